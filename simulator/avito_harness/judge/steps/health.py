"""Steps about what /health says: healthy on a working stack, not healthy while the gateway cannot work (Avito
refuses it, messages are not reaching n8n), and working again once the trouble is gone."""

from __future__ import annotations

from pytest_bdd import parsers, when

from avito_harness.judge.defects import expect
from avito_harness.judge.step_params import PARAM_TYPES

from .checks import check
from .harness import Harness

__all__: list[str] = []  # step definitions only: pytest-bdd finds them, nothing is imported from here


def health(harness: Harness) -> tuple[bool, str]:
    """Whether /health says healthy (200 with "status": "healthy", SPEC's words), and what it said."""
    answer = harness.http.get(f"{harness.gateway_url}/health")
    try:
        body = answer.json()
    except ValueError:
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    return answer.status_code == 200 and status == "healthy", f"{answer.status_code} {answer.text[:300]}"


@check("/health says healthy")
def _(harness: Harness) -> None:
    healthy, said = health(harness)
    expect(healthy, "health_not_healthy", said)


@check("/health does not say healthy")
def _(harness: Harness) -> None:
    """SPEC: healthy "when it can work". Monitoring that hears "healthy" from a gateway that cannot get a token,
    or holds customers' messages n8n has not taken for hours, never pages anyone."""
    healthy, said = health(harness)
    expect(not healthy, "health_blind", f"/health answered {said} while the gateway cannot do its work")


@when("Avito lets the gateway in again")
def _(harness: Harness) -> None:
    harness.avito.clear_faults()


@check(parsers.parse("the gateway works again within {seconds:Positive} seconds", extra_types=PARAM_TYPES))
def _(harness: Harness, seconds: int) -> None:
    """A gateway may wait out a backoff after a refusal, but not keep a failure until it is restarted."""
    said = ""
    for _ in range(seconds + 1):
        healthy, said = health(harness)
        chats = harness.api.get("/api/chats")
        if healthy and chats.status_code == 200:
            return
        said = f"/health {said}; GET /api/chats {chats.status_code} {chats.text[:200]}"
        harness.pass_time(1)
    expect(False, "stays_broken", f"{seconds} s after Avito let it in again: {said}")
