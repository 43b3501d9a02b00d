"""The customer's five-stage rollout plan (features/), plus Avito errors reproduced on demand."""

from pytest_bdd import scenarios

scenarios(
    "01_webhook.feature",
    "02_inbound.feature",
    "03_outbound.feature",
    "04_routing.feature",
    "05_end_to_end.feature",
    "06_avito_errors.feature",
)
