@stage3 @avito_errors
Feature: Avito errors reproduced on demand
  Each Avito failure can be reproduced on a laptop; the gateway answers n8n
  with the documented error form, a stable code and whether a retry can help.

  Background:
    Given the harness is running

  Scenario Outline: Avito answers a send with <error>
    Given Avito answers every send with <preset>
    When n8n sends "проверка ошибки" through the gateway
    Then the gateway answers <status> with code "<code>"
    And the error says "Avito API Error <avito_status>"
    And the error is retryable: <retryable>
    And no send was repeated without checking the chat first

    Examples:
      | error                 | preset             | status | code                   | avito_status | retryable |
      | a validation error    | validation_400     | 400    | avito_bad_request      | 400          | no        |
      | no tariff             | tariff_402         | 402    | avito_payment_required | 402          | no        |
      | forbidden             | forbidden_403      | 403    | avito_forbidden        | 403          | no        |
      | chat not found        | chat_not_found_404 | 404    | avito_not_found        | 404          | no        |
      | a server error        | server_500         | 502    | avito_unavailable      | 500          | yes       |
      | unavailable           | unavailable_503    | 502    | avito_unavailable      | 503          | yes       |

  @gateway_timeout
  Scenario: Avito does not answer in time
    Given Avito hangs on every send
    When n8n sends "таймаут" through the gateway
    Then the gateway answers 504 with code "avito_timeout"
    And the error is retryable: yes
