@stage4
Feature: Stage 4 - routing picks the outbound workflow by the appeal's channel
  Appeals from Avito are answered through BAT OUT Avito and the gateway;
  appeals from other channels never touch Avito.

  Background:
    Given the harness is running
    And the gateway is subscribed to Avito webhooks
    And n8n runs the BatteryCRM workflows

  Scenario: An Avito appeal reaches BAT OUT Avito and the gateway
    When the customer writes "Ещё продаёте?"
    And the batching window closes
    Then the customer's chat shows the AI's answer
    And messages_history has a sent "ai" row for the appeal

  Scenario Outline: Other channels never touch Avito
    When a <channel> client writes "Здравствуйте"
    And the batching window closes
    Then the <channel> outbound stub got the answer
    And nothing was sent to Avito

    Examples:
      | channel  |
      | telegram |
      | vk       |
      | whatsapp |
      | max      |
