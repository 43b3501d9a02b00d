@stage3
Feature: Stage 3 - outbound messages go through the gateway only
  n8n sends with the gateway's API key and never sees an Avito token; the
  answer appears in the customer's Avito chat; errors come back in the
  documented form.

  Background:
    Given the harness is running

  Scenario: A send arrives in the Avito chat with the documented answer
    When n8n sends "Здравствуйте! Спасибо за обращение" through the gateway
    Then the gateway answers 200 with the sent message's id
    And the customer's chat shows "Здравствуйте! Спасибо за обращение"

  Scenario: An answer at Avito's longest is sent whole
    When n8n sends a message of 1000 characters through the gateway
    Then the gateway answers 200 with the sent message's id
    And the customer's chat shows the whole message

  Scenario Outline: An expired token is refreshed without the caller noticing
    Given Avito answers expired tokens with <status>
    And the Avito token has expired
    When n8n sends "после истечения токена" through the gateway
    Then the gateway answers 200 with the sent message's id
    And the customer's chat shows "после истечения токена" once

    Examples:
      | status |
      | 401    |
      | 403    |

  @gateway_clock
  Scenario: The gateway's own limit answers 429 after 100 requests a minute
    When n8n makes 101 requests within a minute
    Then the last one is answered 429 with Retry-After

  Scenario: The gateway's own limit holds and opens again after its window, in real time
    When n8n spends the gateway's announced rate limit
    Then one more request is answered 429 with Retry-After
    And after the window, steady requests are served again

  Scenario: A send without text is refused in the documented form
    When n8n sends a message without text through the gateway
    Then the gateway answers 400 in the documented error form
    And nothing was sent to Avito

  Scenario: Avito's 429 with Retry-After is waited out
    Given Avito answers the next send with 429 and Retry-After
    When n8n sends "после паузы" through the gateway
    Then the gateway answers 200 with the sent message's id
    And the gateway waited out Avito's Retry-After before sending again
    And the customer's chat shows "после паузы" once

  Scenario: Avito's 429 without Retry-After comes back to the caller when it persists
    Given Avito answers every send with 429
    When n8n sends "слишком часто" through the gateway
    Then the gateway answers 429 with code "avito_rate_limited"

  @profile_full
  Scenario: A retried send posts once
    When n8n sends "один раз" through the gateway with idempotency key "bat-out-1"
    And n8n sends "один раз" through the gateway with idempotency key "bat-out-1"
    Then the customer's chat shows "один раз" once

  # BAT OUT waits 30 s for an answer and tries 3 times, up to 5 s apart: its last try may come 100 s after the first
  @gateway_clock @profile_full
  Scenario: A send n8n retries at the end of its retry window posts once
    When n8n sends "повтор в конце окна" through the gateway with idempotency key "bat-out-window"
    And 100 seconds pass
    And n8n sends "повтор в конце окна" through the gateway with idempotency key "bat-out-window"
    Then the customer's chat shows "повтор в конце окна" once

  Scenario: A send whose answer was lost is not posted twice
    Given Avito processes the next send but the answer is lost
    When n8n sends "ответ потерялся" through the gateway
    Then the gateway answers 200 with the sent message's id
    And the customer's chat shows "ответ потерялся" once
    And no send was repeated without checking the chat first

  Scenario: A chat's history is read through the gateway
    When n8n reads the chat's history through the gateway
    Then the history holds the chat's messages

  Scenario: A chat marked read through the gateway is read at Avito
    When n8n marks the chat read through the gateway
    Then Avito saw the chat marked read

  Scenario: An image send
    When n8n sends a photo through the gateway
    Then the gateway answers 200 with the sent message's id
    And the customer's chat ends with a photo

  Scenario: A bulk send reports each chat
    When n8n sends "Акция на аккумуляторы" to every chat and one unknown chat
    Then every known chat shows "Акция на аккумуляторы"
    And the unknown chat is reported as not found
