@stage5
Feature: Stage 5 - end to end
  A customer's message creates an appeal, the AI or an operator answers,
  and the answer is delivered to the customer's Avito chat.

  Background:
    Given the harness is running
    And the gateway is subscribed to Avito webhooks
    And n8n runs the BatteryCRM workflows

  Scenario: The AI answers a new appeal
    When the customer writes "Какая гарантия на аккумулятор?"
    And the batching window closes
    Then one appeal holds 1 message
    And the customer's chat shows the AI's answer
    And messages_history has a sent "ai" row for the appeal

  Scenario: An operator answers instead
    Given operator mode is on
    When the customer writes "Позовите, пожалуйста, человека"
    And the batching window closes
    Then the appeal waits for an operator
    When the operator answers "Добрый день! Меня зовут Анна, чем помочь?"
    Then the customer's chat shows "Добрый день! Меня зовут Анна, чем помочь?"
    And messages_history has a sent "operator" row for the appeal

  Scenario: An operator's answer with an apostrophe, quotes, a backslash, an emoji and a new line is kept as written
    Given operator mode is on
    When the customer writes "А доставка в выходные есть?"
    And the batching window closes
    Then the appeal waits for an operator
    When the operator answers with an apostrophe, quotes, a backslash, an emoji and a new line
    Then the customer's chat and messages_history hold that answer as written

  Scenario: The seller answers from the Avito app: kept as the operator's answer, the AI stays silent
    When the customer writes "Есть аккумулятор 60Ah?"
    And the batching window closes
    Then the customer's chat shows the AI's answer
    When the seller replies from the Avito app "Да, есть, приезжайте"
    Then messages_history keeps the seller's reply "Да, есть, приезжайте" as the operator's
    And the seller's reply did not make the AI answer again

  Scenario: Several quick messages are batched into one appeal
    When the customer writes "Здравствуйте"
    And the customer sends a photo
    And the customer writes "Вот такой стоит, нужен такой же"
    And the batching window closes
    Then one appeal holds 3 messages
    And the customer's chat shows the AI's answer once

  Scenario: A voice message end to end
    When the customer sends a voice message saying "нужен аккумулятор 75 ампер"
    And the batching window closes
    Then one appeal holds 1 message
    And the appeal's text contains "нужен аккумулятор 75 ампер"
    And the customer's chat shows the AI's answer
