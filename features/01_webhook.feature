@stage1
Feature: Stage 1 - the webhook is connected
  The gateway subscribes its webhook URL at Avito through its own API,
  answers monitoring, and passes a customer's message on to n8n.

  Background:
    Given the harness is running

  Scenario: Subscribing the gateway's webhook through the gateway
    When the gateway subscribes its webhook at Avito
    Then Avito's probe of the webhook URL passed
    And Avito lists the gateway's webhook URL

  Scenario: Monitoring endpoints answer
    Then /health says healthy
    And /info shows 100 requests per 60 seconds and 20 connections
    And /api/token shows a token without revealing it

  Scenario: A gateway Avito no longer lets in does not say healthy, and works again once it may
    Given Avito no longer lets the gateway in
    When n8n lists the chats through the gateway
    Then /health does not say healthy
    When Avito lets the gateway in again
    Then the gateway works again within 30 seconds

  Scenario: The API is closed to anyone without the key
    Then the API refuses calls without a valid key
    And a page on another site cannot call the API with the user's credentials

  @gateway_start
  Scenario: A gateway started without API_KEY does not serve the API
    Then a gateway started without API_KEY does not serve /api to anyone

  Scenario: A broken webhook body is answered 200 and the next message still arrives
    Given the gateway is subscribed to Avito webhooks
    When a webhook with a broken JSON body reaches the gateway
    And the customer writes "после сломанного вебхука"
    Then the gateway answered every one of them 200
    And n8n receives 1 normalized message
    And the message text is "после сломанного вебхука"

  Scenario: A test message from a customer reaches n8n
    Given the gateway is subscribed to Avito webhooks
    When the customer writes "Тестовое сообщение"
    Then n8n receives 1 normalized message
    And the message text is "Тестовое сообщение"
