"""The fakes stay usable after hostile input: what they recorded is always readable, controls refuse nonsense."""

from __future__ import annotations

import httpx
import pytest

from avito_harness.fakes.avito.media import png_bytes
from avito_harness.stack.local import Stack
from tests.gateway.conftest import USER

DEEP = b'{"meta": {"raw": ' + b"[" * 400 + b"]" * 400 + b"}}"


def test_deeply_nested_json_never_blinds_the_fake_n8n(sim: Stack) -> None:
    sim.n8n.register("deep")  # not the normalized-message path: the plugin would fail the test for the contract
    answer = httpx.post(sim.n8n.webhook_url("deep"), content=DEEP, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    (received,) = sim.n8n.received("deep")
    assert "_too_deep" in received["body"]  # kept as text, readable
    assert httpx.get(f"{sim.urls['n8n']}/_sim/journal").status_code == 200
    httpx.post(sim.n8n.webhook_url("deep"), content=b"[" * 100_000 + b"]" * 100_000,
               headers={"Content-Type": "application/json"})
    assert len(sim.n8n.received("deep")) == 2


def test_deeply_nested_json_never_blinds_the_fake_avitos_journal(sim: Stack) -> None:
    httpx.post(f"{sim.urls['avito']}/messenger/v3/webhook", content=DEEP, headers={"Content-Type": "application/json"})
    httpx.post(f"{sim.urls['avito']}/token", content=b"[" * 50_000 + b"]" * 50_000,
               headers={"Content-Type": "application/json"})
    journal = httpx.get(f"{sim.urls['avito']}/_sim/journal")
    assert journal.status_code == 200 and len(journal.json()["requests"]) == 2


@pytest.mark.parametrize("body", [b'{"seconds": 1e308}', b'{"seconds": NaN}', b'{"seconds": Infinity}',
                                  b'{"seconds": -1}', b'{"seconds": "soon"}', b"{}"])
def test_the_clock_refuses_nonsense_advances(sim: Stack, body: bytes) -> None:
    before = sim.clock.now()
    answer = httpx.post(f"{sim.urls['avito']}/_sim/clock/advance", content=body,
                        headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500 and "seconds" in answer.text
    assert sim.clock.now() == before


def test_reset_puts_the_clock_back_as_the_readme_says(sim: Stack) -> None:
    start = sim.clock.now()
    sim.avito.advance(3600)
    assert httpx.post(f"{sim.urls['avito']}/_sim/reset").status_code == 200
    assert sim.clock.now() == start


@pytest.mark.parametrize(("rule", "field"), [(b'{"route": 5}', "route"), (b'{"status": "500"}', "status"),
                                             (b'{"times": 1.5}', "times"), (b'{"delay": NaN}', "delay"),
                                             (b'{"required": "yes"}', "required")])
def test_fault_rules_of_the_wrong_type_are_422_naming_the_field(sim: Stack, rule: bytes, field: str) -> None:
    answer = httpx.post(f"{sim.urls['avito']}/_sim/faults", content=rule, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and field in answer.text, answer.text
    assert sim.avito.faults() == []


def test_upload_of_a_truncated_png_is_refused(sim: Stack) -> None:
    token = httpx.post(f"{sim.urls['avito']}/token", data={"grant_type": "client_credentials",
                                                           "client_id": "sim-client-id",
                                                           "client_secret": "sim-client-secret"}).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    url = f"{sim.urls['avito']}/messenger/v1/accounts/{USER}/uploadImages"
    whole = png_bytes("upload", 32, 32)
    for broken in (whole[:18], whole[:-20], whole[:40] + b"\0" * 8 + whole[48:]):
        answer = httpx.post(url, files={"uploadfile[]": ("a.png", broken, "image/png")}, headers=auth)
        assert answer.status_code == 400 and "decoded" in answer.text, answer.text
    assert httpx.post(url, files={"uploadfile[]": ("a.png", whole, "image/png")}, headers=auth).status_code == 200
