"""Steps for a recorded incident (``avito-harness record``): Avito answering as it did, its webhooks again.

``Given Avito behaves as recorded in "incident.har"`` loads the recording into the fake Avito (a path relative
to the folder the run starts in, or absolute); ``When Avito delivers the recorded webhooks`` posts them, in
their order and spacing (on the gateway's clock), to the URL the gateway subscribed. The calls the recording
did not cover are answered by the fake as always (``avito-harness replay`` lists them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_bdd import given, parsers, when

from avito_harness.judge.environment import USER
from avito_harness.judge.verdict import CannotJudge, Category
from avito_harness.recording.har import read_har
from avito_harness.recording.replay import deliver, to_scenario, webhooks_of

from .harness import Harness

__all__: list[str] = []  # step definitions only


@pytest.fixture
def recorded() -> dict[str, object]:
    """The recording a scenario loaded (its scenario form)."""
    return {}


@given(parsers.parse('Avito behaves as recorded in "{path}"'))
def _(harness: Harness, recorded: dict[str, object], path: str) -> None:
    """The recording played for the harness's account; the scenario's chat becomes the recording's (its first
    chat that a call or a webhook names), so "n8n sends ..." goes where the incident's sends went."""
    try:
        scenario = to_scenario(read_har(Path(path).expanduser()), source=Path(path).name, user_id=USER)
    except ValueError as exc:
        raise CannotJudge(Category.USAGE, str(exc)) from None
    harness.avito.load_scenario({"avito": scenario["avito"]})
    avito = scenario["avito"]
    assert isinstance(avito, dict)
    if avito["chats"]:
        harness.chat_id = str(avito["chats"][0]["chat_id"])
    recorded.update(scenario)


@when("Avito delivers the recorded webhooks")
def _(harness: Harness, recorded: dict[str, object]) -> None:
    subscribed = harness.avito.account(USER)["subscriptions"]
    if not subscribed:
        raise CannotJudge(Category.FEATURE, "the recorded webhooks need a subscription: add \"Given the gateway is "
                          "subscribed to Avito webhooks\" before this step")
    deliver(subscribed[-1]["url"], webhooks_of(recorded), wait=harness.pass_time)
