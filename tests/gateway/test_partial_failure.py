"""The gateway in process under partial failure (issue 27): a store that refuses after the post, an outcome
nobody can confirm, a token endpoint that hangs or refuses, accounts side by side, oversized bodies on odd
paths, file modes, images under one key."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from avito_gateway.errors import StorageError
from avito_gateway.idempotency import fingerprint
from avito_harness.fakes.avito.media import png_bytes
from avito_harness.stack import Stack
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, first_chat, subscribe, wait_until


def _posted(sim: Stack, chat_id: str, text: str) -> list[dict[str, Any]]:
    """What the customer sees in the chat: our messages with ``text``."""
    return [m for m in sim.avito.chat(USER, chat_id)["messages"]
            if m["direction"] == "out" and m["content"].get("text") == text]


def _send(gateway: GatewayHandle, chat_id: str, text: str, key: str) -> httpx.Response:
    return gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": text},
                            headers={"Idempotency-Key": key})


# --- 1. the store refuses after the post ----------------------------------------------------------------------

def test_a_post_whose_record_the_store_refuses_is_answered_and_never_posted_again(
        gateway: GatewayHandle, sim: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Avito confirmed the post, then the store refused its record and the key's answer (a full disk, a database
    that stopped mid-send): the caller gets the message id; a retry with the key gets the same answer from
    memory, never a second post; the writes reach the store once it takes writes again."""
    store = gateway.services.store
    chat = first_chat(sim)

    async def full(*_: object) -> None:
        raise StorageError("storage write failed: database or disk is full")

    monkeypatch.setattr(store, "record_sent", full)
    monkeypatch.setattr(store, "finish_idempotency", full)
    first = _send(gateway, chat, "запись не удалась", "rec-1")
    assert first.status_code == 200, first.text
    again = _send(gateway, chat, "запись не удалась", "rec-1")
    assert again.status_code == 200 and again.json()["idempotent_replay"] is True
    assert again.json()["response"]["id"] == first.json()["response"]["id"]
    monkeypatch.undo()
    sim.avito.advance(2)  # the held writes' backoff

    def stored() -> bool:
        found = asyncio.run(store.idempotency("rec-1"))
        return found is not None and found.status == 200
    wait_until(stored, what="the held answer reaching the store")
    assert asyncio.run(store.is_our_send(first.json()["response"]["id"]))  # its echo is recognised
    assert len(_posted(sim, chat, "запись не удалась")) == 1


# --- the outcome nobody can confirm ---------------------------------------------------------------------------

def test_an_outcome_nobody_can_confirm_keeps_the_key_and_a_retry_reads_the_chat_first(
        gateway: GatewayHandle, sim: Stack) -> None:
    """Avito took the post and the answer was lost; the chat cannot be read either. The answer says the outcome
    is unknown and to retry with the same key; the retry reads the chat (now readable), finds the message and
    answers with it: the customer sees it once."""
    chat = first_chat(sim)
    sim.avito.add_fault("answer_lost", route="POST /messenger/v1/accounts/*/chats/*/messages", times=1)
    unreadable = sim.avito.add_fault("unavailable_503", route="GET /messenger/v3/accounts/*/chats/*/messages/",
                                     times=None)
    first = _send(gateway, chat, "дошло ли?", "unknown-1")
    assert (first.status_code, first.json()["code"], first.json()["retryable"]) == (504, "send_outcome_unknown", True)
    assert "same Idempotency-Key" in first.json()["error"]
    assert len(_posted(sim, chat, "дошло ли?")) == 1  # it did land
    sim.avito.http.delete(f"/_sim/faults/{unreadable['id']}")
    retry = _send(gateway, chat, "дошло ли?", "unknown-1")
    assert retry.status_code == 200, retry.text
    (landed,) = _posted(sim, chat, "дошло ли?")
    assert retry.json()["response"]["id"] == landed["id"]


# --- 5. token failures are shared -----------------------------------------------------------------------------

def _parallel(n: int, fn: Any) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def test_calls_waiting_for_a_hanging_token_endpoint_share_its_failure(make_gateway: Any, sim: Stack) -> None:
    """/token hangs: six sends at once make one token request per attempt between them, and all of them fail
    together (a lock taken in turn made them fail one after another, each after its own timeout)."""
    gateway = make_gateway(connection_timeout=1, max_retries=1)
    sim.avito.add_fault("hang", route="POST /token", times=None)
    chat = first_chat(sim)

    def send(n: int) -> tuple[int, float]:
        answer = gateway.api.post("/api/messages/send", json={"chat_id": chat, "text": f"без токена {n}"})
        return answer.status_code, time.monotonic()

    started = time.monotonic()
    results = _parallel(6, send)
    assert {status for status, _ in results} == {504}
    ends = [at - started for _, at in results]
    assert max(ends) - min(ends) < 1.0, ends
    # one per attempt (max_retries=1), shared; a hung request is journaled once the fake sees it dropped
    wait_until(lambda: len(sim.avito.journal(method="POST", path="/token")) >= 2, 10)
    assert len(sim.avito.journal(method="POST", path="/token")) == 2
    assert _posted(sim, chat, "без токена 0") == []


def test_a_refused_secret_is_asked_once_however_often_health_is_called(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(avito_client_secret="not-the-secret")
    answers = _parallel(20, lambda _: [httpx.get(f"{gateway.url}/health") for _ in range(10)])
    assert len(sim.avito.journal(method="POST", path="/token")) == 1  # 200 /health calls, one request
    statuses = {a.status_code for batch in answers for a in batch}
    assert statuses == {503}
    assert "cannot obtain an Avito token" in answers[0][0].json()["reason"]
    assert answers[0][0].json()["by_account"][0]["avito_token"] is False
    sim.avito.advance(6)  # the refusal's backoff ran out: one more try, not one per call
    _parallel(10, lambda _: httpx.get(f"{gateway.url}/health"))
    assert len(sim.avito.journal(method="POST", path="/token")) == 2


# --- 6. accounts side by side ---------------------------------------------------------------------------------

def test_health_and_info_describe_every_account(make_gateway: Any, sim: Stack, tmp_path: Path) -> None:
    """The first account subscribed with its secret path; the second's plain path is still open: the gateway as a
    whole is open to forged webhooks, and says so, account by account."""
    shop2 = 200000002
    sim.avito.create_account(user_id=shop2, client_id="shop2-client-id", client_secret="shop2-client-secret")
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(yaml.safe_dump({"accounts": [{
        "name": "shop2", "user_id": shop2, "client_id": "shop2-client-id", "client_secret": "shop2-client-secret",
        "api_keys": ["shop2-key"]}]}))
    gateway = make_gateway(accounts_file=accounts)
    subscribe(gateway)
    health, info = httpx.get(f"{gateway.url}/health").json(), httpx.get(f"{gateway.url}/info").json()
    for answer in (health, info):
        assert answer["webhook_auth"] == "open"
        assert [(a["name"], a["user_id"], a["webhook_auth"]) for a in answer["by_account"]] == [
            ("default", USER, "secret_path"), ("shop2", shop2, "open")]
    assert [a["avito_token"] for a in health["by_account"]] == [True, True]
    assert info["accounts"] == 2


# --- 7. smaller -----------------------------------------------------------------------------------------------

def _declared_only(url: str, path: str, length: int) -> tuple[int, bytes]:
    """A POST that declares ``length`` bytes and sends none: the answer comes before any body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        head = conn.recv(65536)
    return int(head.split(b" ", 2)[1]), head


def test_only_the_receivers_real_paths_record_an_oversized_body(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(max_body_bytes=1024, webhook_plain_path="deny")
    secret = gateway.services.webhook_auth.secret
    for path in ("/webhook/avitoXYZ", "/webhook/avito/not-the-secret", "/webhook/avito"):
        assert _declared_only(gateway.url, path, 10**6)[0] == 413, path
    assert gateway.api.get("/api/inbound/rejected").json()["rejected"] == []  # nothing stored for those
    assert _declared_only(gateway.url, f"/webhook/avito/{secret}", 10**6)[0] == 200  # Avito's own path
    (row,) = gateway.api.get("/api/inbound/rejected").json()["rejected"]
    assert row["reason"] == "body too large: 1000000 bytes"


def test_the_data_files_are_readable_by_the_gateway_alone(gateway: GatewayHandle, sim: Stack) -> None:
    subscribe(gateway)
    sim.avito.customer_says(USER, first_chat(sim), "личное")
    sim.n8n.wait_for(1, timeout=10, path="avito")
    data = gateway.settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.iterdir() if p.name.startswith("gateway.sqlite3")]
    assert {p.name for p in files} >= {"gateway.sqlite3", "gateway.sqlite3-wal"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}


def test_another_image_of_the_same_size_under_the_same_key_is_refused(gateway: GatewayHandle, sim: Stack) -> None:
    chat = first_chat(sim)
    by_size: dict[int, bytes] = {}
    for n in range(50):  # two different pictures of exactly the same byte size
        image = png_bytes(f"promo-{n}", 64, 64)
        if len(image) in by_size and by_size[len(image)] != image:
            first, second = by_size[len(image)], image
            break
        by_size[len(image)] = image
    else:
        pytest.fail("no two pictures of one size")

    def send(image: bytes) -> httpx.Response:
        return gateway.api.post("/api/messages/send/image", data={"chat_id": chat}, headers={"Idempotency-Key": "img"},
                                files={"file": ("promo.png", image, "image/png")})

    assert send(first).status_code == 200
    other = send(second)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert send(first).json()["idempotent_replay"] is True
    assert sum(1 for m in sim.avito.chat(USER, chat)["messages"] if m["type"] == "image") == 1


def test_accounts_file_values_that_cannot_work_are_refused_at_start(tmp_path: Path) -> None:
    """Covered value by value in tests/unit/test_gateway_accounts_config.py; here the process: exit 2, one line."""
    import subprocess
    import sys

    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(yaml.safe_dump({"accounts": [{
        "name": "shop2", "user_id": 2, "client_id": "c", "client_secret": "s", "api_keys": ["k2"],
        "tenant": "север\r\nX-Injected: 1"}]}))
    env = {"PATH": "/usr/bin:/bin", "API_KEY": API_KEY, "AVITO_CLIENT_ID": "id", "AVITO_CLIENT_SECRET": "s",
           "AVITO_USER_ID": str(USER), "ACCOUNTS_FILE": str(accounts), "DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "avito_gateway"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "tenant must be printable ASCII" in done.stderr and done.stderr.count("\n") == 1


# --- answers the gateway cannot use ---------------------------------------------------------------------------

def test_avito_answers_without_the_ids_the_gateway_needs_are_clear_errors_never_500(gateway: GatewayHandle,
                                                                                     sim: Stack) -> None:
    chat = first_chat(sim)
    sim.avito.add_fault(route="POST /messenger/v1/accounts/*/uploadImages", status=200, body={})
    upload = gateway.api.post("/api/messages/send/image", data={"chat_id": chat},
                              files={"file": ("a.png", png_bytes("a", 8, 8), "image/png")})
    assert (upload.status_code, upload.json()["code"]) == (502, "avito_error")
    assert "no image id" in upload.json()["error"]
    sim.avito.add_fault(route="POST /messenger/v1/accounts/*/chats/*/messages", status=200, body={"ok": True},
                        times=None)
    send = _send(gateway, chat, "без номера", "no-id")
    # 200, but which message? The chat shows none: Avito's answer is the error, nothing was posted
    assert (send.status_code, send.json()["code"]) == (502, "avito_error"), send.json()
    assert _posted(sim, chat, "без номера") == []


# --- a key left unfinished: whoever runs it next reads the chat first -------------------------------------------

def _as_an_earlier_holder(sim: Stack, gateway: GatewayHandle, key: str, request: dict[str, Any],
                          post: Callable[[dict[str, str]], None]) -> None:
    """What a replica that died mid-send leaves behind: its post in the chat (``post`` with our account's
    token), its claim on the key unfinished and lapsed, nothing recorded."""
    token = httpx.post(f"{sim.urls['avito']}/token", data={"grant_type": "client_credentials",
                       "client_id": "sim-client-id", "client_secret": "sim-client-secret"}).json()["access_token"]
    post({"Authorization": f"Bearer {token}"})
    store = gateway.services.store
    now = sim.clock.now()
    assert asyncio.run(store.claim_idempotency(key, fingerprint(request), now - 10, now - 5)) is not None


def test_a_text_key_taken_over_is_answered_from_the_chat_not_posted_again(gateway: GatewayHandle,
                                                                          sim: Stack) -> None:
    chat = first_chat(sim)
    path = f"{sim.urls['avito']}/messenger/v1/accounts/{USER}/chats/{chat}/messages"
    _as_an_earlier_holder(sim, gateway, "left-1", {"op": "send", "chat_id": chat, "text": "уже отправлено"},
                          lambda auth: httpx.post(path, headers=auth, json={"type": "text",
                                                                            "message": {"text": "уже отправлено"}}))
    answer = _send(gateway, chat, "уже отправлено", "left-1")
    assert answer.status_code == 200, answer.text
    (posted,) = _posted(sim, chat, "уже отправлено")
    assert answer.json()["response"]["id"] == posted["id"]


def test_an_image_key_taken_over_is_answered_from_the_chat_not_posted_again(gateway: GatewayHandle,
                                                                           sim: Stack) -> None:
    chat = first_chat(sim)
    image = png_bytes("earlier", 16, 16)
    base = f"{sim.urls['avito']}/messenger/v1/accounts/{USER}"

    def post(auth: dict[str, str]) -> None:
        uploaded = httpx.post(f"{base}/uploadImages", headers=auth, files={"uploadfile[]": ("a.png", image, "image/png")})
        httpx.post(f"{base}/chats/{chat}/messages/image", headers=auth, json={"image_id": next(iter(uploaded.json()))})

    request = {"op": "image", "chat_id": chat, "sha256": hashlib.sha256(image).hexdigest()}
    _as_an_earlier_holder(sim, gateway, "left-img", request, post)
    answer = gateway.api.post("/api/messages/send/image", data={"chat_id": chat}, headers={"Idempotency-Key": "left-img"},
                              files={"file": ("a.png", image, "image/png")})
    assert answer.status_code == 200, answer.text
    images = [m for m in sim.avito.chat(USER, chat)["messages"] if m["type"] == "image"]
    assert [m["id"] for m in images] == [answer.json()["response"]["id"]]
