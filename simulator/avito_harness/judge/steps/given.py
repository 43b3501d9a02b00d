"""Given steps: the world a scenario starts in (subscriptions, the workflows' mode) and the faults it plants."""

from __future__ import annotations

from pytest_bdd import given, parsers

from avito_harness.fakes.settings import WEBHOOK_PATH
from avito_harness.judge.defects import expect
from avito_harness.judge.environment import USER
from avito_harness.judge.step_params import PARAM_TYPES

from .harness import Harness
from .observe import probe_refused

__all__: list[str] = []  # step definitions only: pytest-bdd finds them, nothing is imported from here

SEND_ROUTE = "POST /messenger/v1/accounts/*/chats/*/messages"


@given("the harness is running")
def _(harness: Harness) -> None:
    assert harness.gateway_url


@given("the gateway is subscribed to Avito webhooks")
def _(harness: Harness) -> None:
    response = harness.api.post("/api/webhook/subscribe", json={"url": harness.gateway_url + WEBHOOK_PATH})
    expect(response.status_code == 200, "probe_not_200" if probe_refused(harness) else "unclassified",
           f"the gateway could not subscribe its webhook: {response.status_code} {response.text[:300]}")


@given("n8n runs the BatteryCRM workflows")
def _(harness: Harness) -> None:
    harness.n8n.flows(mode="flows")


@given("operator mode is on")
def _(harness: Harness) -> None:
    harness.n8n.flows(operator_mode=True)


@given("n8n is down")
def _(harness: Harness) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=None, name="n8n down")


@given(parsers.parse("n8n is down for {seconds:Positive} seconds", extra_types=PARAM_TYPES))
def _(harness: Harness, seconds: int) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=None, name="n8n down")
    harness.timers.append((float(seconds), harness.n8n.clear_faults))


@given("n8n answers slowly")
def _(harness: Harness) -> None:
    """Every forward answered after 3 s: longer than Avito waits for its webhook (2 s)."""
    harness.n8n.add_fault(route="POST /webhook/*", effect="delay", delay=3.0, times=None, name="n8n slow",
                          required=False)


@given(parsers.parse("n8n answers the next {n:Positive} forwards with 503", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=n, name=f"n8n 503 x{n}")


@given(parsers.parse("Avito delivers every webhook {n:Positive} times at once", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    harness.avito.settings(USER, delivery={"duplicates": n, "concurrent_duplicates": True})


@given(parsers.parse("Avito answers expired tokens with {status:AuthStatus}", extra_types=PARAM_TYPES))
def _(harness: Harness, status: int) -> None:
    harness.avito.settings(USER, auth_error_status=status)
    harness.send_defect = "expired_token_not_refreshed"


@given("the Avito token has expired")
def _(harness: Harness) -> None:
    chats = harness.api.get("/api/chats")  # the gateway now holds a token Avito knows
    expect(chats.status_code == 200, "unclassified", f"GET /api/chats answered {chats.status_code}: {chats.text[:300]}")
    assert harness.avito.expire_tokens(USER) >= 1


@given("Avito no longer lets the gateway in")
def _(harness: Harness) -> None:
    """The shop's client secret was revoked: every token Avito issued is dead, and a new one is refused."""
    harness.avito.add_fault(route="POST /token", status=401, times=None, name="credentials revoked",
                            body={"error": "invalid_client", "error_description": "client_id or client_secret is wrong"})
    harness.avito.expire_tokens(USER)


@given("Avito answers the next send with 429 and Retry-After")
def _(harness: Harness) -> None:
    wait = "5" if harness.mode == "embedded" else "1"  # virtual seconds cost nothing; real ones do
    harness.avito.add_fault("rate_limited_429_retry_after", route=SEND_ROUTE, headers={"Retry-After": wait})
    harness.seen.retry_after = float(wait)


@given(parsers.parse("Avito answers every send with {preset:Preset}", extra_types=PARAM_TYPES))
def _(harness: Harness, preset: str) -> None:
    name = "rate_limited_429" if preset == "429" else preset
    harness.avito.add_fault(name, route=SEND_ROUTE, times=None)
    harness.send_defect = "avito_error_misreported"


@given("Avito hangs on every send")
def _(harness: Harness) -> None:
    harness.avito.add_fault("hang", route=SEND_ROUTE, times=None)
    harness.send_defect = "avito_error_misreported"


@given("Avito processes the next send but the answer is lost")
def _(harness: Harness) -> None:
    harness.avito.add_fault("answer_lost", route=SEND_ROUTE)
    harness.send_defect = "send_posted_twice"
