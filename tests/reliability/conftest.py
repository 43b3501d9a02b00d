"""The reliability matrix uses the gateway fixtures of tests/gateway (our gateway in front of the fakes)."""

from tests.gateway.conftest import gateway, make_gateway  # noqa: F401  (fixtures)
