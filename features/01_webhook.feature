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

  Scenario: A test message from a customer reaches n8n
    Given the gateway is subscribed to Avito webhooks
    When the customer writes "Тестовое сообщение"
    Then n8n receives 1 normalized message
    And the message text is "Тестовое сообщение"
