@stage2
Feature: Stage 2 - inbound messages arrive at n8n in the normalized format
  Text, photos and voice messages from Avito customers reach n8n as the
  normalized message; what is not a customer message never does.

  Background:
    Given the harness is running
    And the gateway is subscribed to Avito webhooks

  Scenario: A text message
    When the customer writes "Здравствуйте, аккумулятор 60Ah есть?"
    Then n8n receives 1 normalized message
    And the message text is "Здравствуйте, аккумулятор 60Ah есть?"
    And the message names the customer, the ad and the chat type

  Scenario: Symbols, quotes and emoji arrive unchanged
    When the customer writes "Цена? 👍 «скидка» 100% \ 'ok' — <b>x</b> &amp; ё"
    Then n8n receives 1 normalized message
    And the message text is "Цена? 👍 «скидка» 100% \ 'ok' — <b>x</b> &amp; ё"

  Scenario: A message at Avito's longest arrives whole
    When the customer writes a message of 1000 characters
    Then n8n receives 1 normalized message
    And the message text is every character written

  Scenario: The same words written twice reach n8n twice
    When the customer writes "да"
    And the customer writes "да"
    Then n8n receives 2 normalized messages

  Scenario: A slow n8n does not keep Avito's webhook waiting
    Given n8n answers slowly
    When the customer writes "медленный n8n"
    Then every webhook delivery was answered within Avito's 2 seconds
    And n8n receives the customer's message "медленный n8n"

  Scenario: A photo arrives with its largest size
    When the customer sends a photo
    Then n8n receives 1 normalized message
    And the message carries the photo in its largest size

  Scenario: A voice message is downloaded, transcribed and merged
    Given n8n runs the BatteryCRM workflows
    When the customer sends a voice message saying "нужен аккумулятор на Весту"
    Then n8n receives 1 normalized message
    And the message has a voice link that plays "нужен аккумулятор на Весту"
    And n8n transcribed the voice message as "нужен аккумулятор на Весту"

  Scenario: Duplicate deliveries reach n8n once
    Given Avito delivers every webhook 3 times at once
    When the customer writes "дубль"
    Then n8n receives 1 normalized message

  Scenario: A seller's reply from the Avito app reaches n8n as the seller's; echoes and system messages do not
    When n8n sends "Ответ оператора" through the gateway
    And the seller replies from the Avito app "Ответил из приложения"
    And Avito posts a system message
    And the customer writes "А это клиент"
    Then n8n receives the seller's reply "Ответил из приложения" marked as the seller's
    And n8n receives the customer's message "А это клиент"
    And n8n received nothing else

  Scenario: n8n answers 503 twice, and the message still arrives once
    Given n8n answers the next 2 forwards with 503
    When the customer writes "n8n споткнулся"
    Then n8n receives 1 normalized message within 20 seconds
    And the message text is "n8n споткнулся"

  Scenario: n8n is down for a few seconds, and what was written meanwhile arrives once, in order
    Given n8n is down for 2 seconds
    When the customer writes "n8n перезапускается"
    And the customer writes "второе, пока n8n лежит"
    And the customer writes "третье"
    Then n8n receives 3 normalized messages within 20 seconds
    And n8n received them in the order written

  @gateway_clock
  Scenario: n8n is down for a while, then the message is delivered once
    Given n8n is down
    When the customer writes "пока n8n лежит"
    And 60 seconds pass
    Then n8n has received nothing
    When n8n is back
    And 600 seconds pass
    Then n8n receives 1 normalized message
    And the message text is "пока n8n лежит"

  @gateway_clock
  Scenario: n8n refuses a message for hours: the gateway says so, keeps it, and delivers it once n8n is back
    Given n8n is down
    When the customer writes "n8n лежит три часа"
    And 10800 seconds pass
    Then /health does not say healthy
    When n8n is back
    And 600 seconds pass
    Then n8n receives 1 normalized message
    And the message text is "n8n лежит три часа"
