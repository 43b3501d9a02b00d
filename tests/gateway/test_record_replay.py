"""Record what Avito did, replay it: our gateway recorded through the proxy against the fake Avito (with two
Avito errors armed), then the recording played back by the fake to a fresh gateway: the gateway gets the same
answers in the same order, the webhooks arrive again, and the file holds no secret (and, anonymized, no
customer's name, phone or text)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avito_harness.recording.anonymize import Anonymizer
from avito_harness.recording.har import HarWriter, read_har
from avito_harness.recording.proxy import RecordingProxy, recording_app
from avito_harness.recording.replay import deliver, not_in_recording, to_scenario, webhooks_of
from avito_harness.stack import Stack
from avito_harness.stack.serve import serve_in_thread
from avito_harness.waiting import pause
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, subscribe, wait_until

CUSTOMER_PHONE = "+7 912 345-67-89"


@pytest.fixture
def recording(sim: Stack, tmp_path: Path) -> Iterator[tuple[Path, RecordingProxy, str]]:
    path = tmp_path / "incident.har"
    proxy = RecordingProxy(HarWriter(path, began=sim.clock.now()), upstream=sim.urls["avito"], public_url="")
    served = serve_in_thread(recording_app(proxy), name="recorder")
    proxy.public_url = served.url
    yield path, proxy, served.url
    served.stop()


def _session(sim: Stack, gateway: GatewayHandle, chats: list[str], sends: int = 24) -> list[tuple[int, str]]:
    """What n8n does through the gateway in the incident: each answer's status and code, in order."""
    answers = []
    for n in range(sends):
        chat = chats[n % len(chats)]
        sent = gateway.api.post("/api/messages/send", json={"chat_id": chat, "text": f"ответ {n}"},
                                headers={"Idempotency-Key": f"incident-{n}"})
        answers.append((sent.status_code, str(sent.json().get("code", "ok"))))
        if n % 4 == 0:
            listed = gateway.api.get("/api/chats")
            answers.append((listed.status_code, str(len(listed.json().get("chats", listed.json())))))
        if n % 6 == 0:
            history = gateway.api.get(f"/api/chats/{chat}/messages")
            answers.append((history.status_code, "history"))
    return answers


def _arm_two_avito_errors(sim: Stack) -> None:
    sim.avito.add_fault(route="POST /messenger/v1/accounts/*/chats/*/messages", status=400, after=5, times=1,
                        body={"error": {"code": 400, "message": "message text is invalid"}})
    sim.avito.add_fault("rate_limited_429_retry_after", route="GET /messenger/v2/accounts/*/chats", after=2, times=1)


def test_a_recorded_incident_replays_with_the_same_answers_in_the_same_order(
        sim: Stack, make_gateway: Callable[..., GatewayHandle], recording: tuple[Path, RecordingProxy, str],
        tmp_path: Path) -> None:
    path, proxy, proxy_url = recording
    chats = [c["id"] for c in sim.avito.account(USER)["chats"][:3]]
    live_gateway = make_gateway(avito_api_base_url=proxy_url, data_dir=tmp_path / "live", max_retries=1)
    subscribe(live_gateway)
    for n, chat in enumerate(chats):  # webhooks: Avito -> proxy -> gateway -> n8n
        sim.avito.customer_says(USER, chat, f"звоните {CUSTOMER_PHONE}, вопрос {n}")
    wait_until(lambda: len(sim.n8n.received()) >= len(chats), 10)
    live_texts = [r["body"]["text"] for r in sim.n8n.received()]
    _arm_two_avito_errors(sim)
    live = _session(sim, live_gateway, chats)
    live_gateway.stop()

    entries = read_har(path)
    text = path.read_text(encoding="utf-8")
    assert len(entries) >= 50, len(entries)
    assert {e["_avito_kind"] for e in entries} == {"avito", "webhook"}
    assert {(e["request"]["method"], e["response"]["status"]) for e in entries} >= {("POST", 400), ("GET", 429)}
    for secret in ["sim-client-secret", API_KEY, *sim.avito.tokens(USER)]:
        assert secret not in text  # masked as it was written
    assert live.count((400, "avito_bad_request")) == 1  # the 429 the gateway waited out: only in the recording

    scenario = to_scenario(entries, source=path.name)
    sim.reset()
    sim.load_scenario(scenario)
    # the recorded chats and their messages are the fake's data now, under their recorded ids
    recorded = {str(m["id"]): m for chat in scenario["avito"]["chats"] for m in chat.get("messages", [])}
    held = {m["id"]: m for chat in chats for m in sim.avito.chat(USER, chat)["messages"]}
    assert recorded and set(recorded) <= set(held)
    assert all(any(text in str(held[i]["content"]) for i in recorded) for text in live_texts)
    replay_gateway = make_gateway(data_dir=tmp_path / "replay", max_retries=1)  # straight at the fake Avito
    subscribe(replay_gateway)
    before = len(sim.n8n.received())
    replayed = _session(sim, replay_gateway, chats)
    assert replayed == live
    # the recorded webhooks again, in their order: the customers' messages, and the echoes of the gateway's sends
    hooks = webhooks_of(scenario)
    assert deliver(replay_gateway.webhook_url(), hooks, wait=lambda s: None) == [200] * len(hooks)
    wait_until(lambda: len(sim.n8n.received()) - before >= len(chats), 10)
    pause(0.5)  # an echo forwarded by mistake would arrive now
    assert sorted(r["body"]["text"] for r in sim.n8n.received()[before:]) == sorted(live_texts)
    missed = not_in_recording(sim.avito.journal())
    assert missed == [], missed  # every call of the replayed session was in the recording
    print(f"\nrecorded {len(entries)} entries ({len(hooks)} webhooks); the replay's {len(replayed)} answers "
          f"equal the live run's; calls not in the recording: {len(missed)}")


def _reposted_blindly(journal: list[dict[str, Any]]) -> int:
    """The judge's rule (no send repeated without reading the chat first), on what the fake Avito saw: a send posted
    again after Avito's ambiguous answer (a 5xx, or none), with no read of the chat in between."""
    blind, unsure = 0, False
    for call in journal:
        if not str(call["path"]).startswith("/messenger/"):
            continue
        if call["method"] == "POST" and str(call["path"]).endswith("/messages"):
            blind += unsure
            unsure = int(call.get("status") or 0) >= 500 or not call.get("status")
        elif call["method"] == "GET" and "/messages" in str(call["path"]):
            unsure = False
    return blind


@pytest.mark.parametrize("double", [None, "blind_retry"])
def test_a_replayed_incident_gives_the_live_runs_verdict_for_our_gateway_and_a_planted_defect(
        double: str | None, sim: Stack, make_gateway: Callable[..., GatewayHandle],
        recording: tuple[Path, RecordingProxy, str], tmp_path: Path) -> None:
    """50+ recorded calls with two Avito errors (a 500 for a send, a 429 for the chat list): our gateway reads the
    chat before it sends again, the double posts again blindly; the replay must judge each as the live run did."""
    path, _, proxy_url = recording
    chats = [c["id"] for c in sim.avito.account(USER)["chats"][:3]]
    live_gateway = make_gateway(avito_api_base_url=proxy_url, data_dir=tmp_path / "live", double=double)
    sim.avito.add_fault(route="POST /messenger/v1/accounts/*/chats/*/messages", status=500, after=5, times=1,
                        body={"error": {"code": 500, "message": "internal error"}})
    sim.avito.add_fault("rate_limited_429_retry_after", route="GET /messenger/v2/accounts/*/chats", after=2, times=1)
    live = _session(sim, live_gateway, chats, sends=36)
    live_verdict = _reposted_blindly(sim.avito.journal())
    live_gateway.stop()
    entries = read_har(path)
    assert len(entries) >= 50 and {(e["request"]["method"], e["response"]["status"]) for e in entries} >= {
        ("POST", 500), ("GET", 429)}

    sim.reset()
    sim.load_scenario(to_scenario(entries, source=path.name))
    replayed = _session(sim, make_gateway(data_dir=tmp_path / "replay", double=double), chats, sends=36)
    assert replayed == live
    assert _reposted_blindly(sim.avito.journal()) == live_verdict
    assert (live_verdict > 0) == (double is not None), live_verdict  # the verdict itself: the double's defect only
    print(f"\n{double or 'our gateway'}: {len(entries)} recorded calls, sends posted again blindly: live "
          f"{live_verdict}, replayed {_reposted_blindly(sim.avito.journal())}")


def test_an_anonymized_recording_holds_no_name_phone_or_text_and_stays_consistent(tmp_path: Path) -> None:
    name, text = "Ольга Смирнова", f"позвоните мне {CUSTOMER_PHONE} про аккумулятор"
    chat = {"id": "c1", "users": [{"id": 7, "name": name}], "last_message": {"content": {"text": text}}}
    hook = {"payload": {"value": {"chat_id": "c1", "content": {"text": text, "voice": None},
                                  "author": {"name": name}, "image": {"sizes": {"640x480": "https://img.avito.st/1.jpg"}}}}}

    def item(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"request": {"method": "POST", "url": "http://x/y", "postData": {"mimeType": "application/json",
                                                                                "text": json.dumps(body)}},
                "response": {"status": 200, "content": {"mimeType": "application/json", "text": json.dumps(body)}},
                "_avito_kind": kind}

    anonymizer = Anonymizer(seed=7)
    out = json.dumps([anonymizer.entry(item("avito", chat)), anonymizer.entry(item("webhook", hook))],
                     ensure_ascii=False)
    for original in (name, text, CUSTOMER_PHONE, "img.avito.st", "аккумулятор"):
        assert original not in out
    again = json.dumps([Anonymizer(seed=7).entry(item("avito", chat))], ensure_ascii=False)
    first = json.loads(json.loads(out)[0]["response"]["content"]["text"])["users"][0]["name"]
    webhook_name = json.loads(json.loads(out)[1]["request"]["postData"]["text"])["payload"]["value"]["author"]["name"]
    assert first == webhook_name  # the same person, the same fake, in every hop
    assert first in again  # the same seed, the same fakes
