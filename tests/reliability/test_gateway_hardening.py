"""The gateway under attack and on a bad day: full disk, slow n8n, open webhook, growing storage, odd values."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from avito_gateway.errors import StorageError
from avito_harness.stack.gateway_process import GatewayProcess, free_port
from avito_harness.stack.local import Stack
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, subscribe


def _chats(sim: Stack, n: int) -> list[str]:
    chats = [c["id"] for c in sim.avito.account(USER)["chats"]]
    while len(chats) < n:
        chats.append(sim.avito.create_chat(USER)["id"])
    return chats[:n]


def _customer(sim: Stack, chat_id: str) -> int:
    return int(next(u["id"] for u in sim.avito.chat(USER, chat_id)["users"] if u["id"] != USER))


# --- 3. disk full -------------------------------------------------------------------------------------------

def test_full_storage_shows_in_health_and_avito_is_asked_to_retry(gateway: GatewayHandle, sim: Stack) -> None:
    """SQLite's own 'database or disk is full' (max_page_count caps the file where it stands, so a probe that fits
    in existing pages still works, as on a really full disk): the write fails, /health says so."""
    subscribe(gateway)
    db = gateway.services.store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    chat = _chats(sim, 1)[0]
    sim.avito.settings(USER, delivery={"retries": 0})
    statuses = []
    for n in range(40):  # until the pages already in the file are used up
        sim.avito.customer_says(USER, chat, f"место кончилось? {n} " + "я" * 900)
        statuses.append(sim.avito.deliveries(account=USER, wait_count=n + 1, timeout=10)[n]["status"])
        if statuses[-1] != 200:
            break
    assert statuses[-1] == 503, statuses  # not 200: Avito keeps the message and delivers it again
    health = httpx.get(f"{gateway.url}/health")
    assert (health.status_code, health.json()["status"]) == (503, "unhealthy"), health.text
    assert "storage" in health.json()["reason"] and "full" in health.json()["reason"]
    stored = len(gateway.api.get("/api/inbound").json()["messages"])
    assert stored == len(statuses) - 1  # the refused one is not half-stored
    db.execute("PRAGMA max_page_count = 1073741823")
    sim.avito.customer_says(USER, chat, "снова можно")  # the next write succeeds ...
    sim.avito.deliveries(account=USER, wait_count=len(statuses) + 1, timeout=10)
    assert httpx.get(f"{gateway.url}/health").status_code == 200  # ... and health recovers


def test_low_free_disk_is_unhealthy(make_gateway: Any) -> None:
    gateway = make_gateway(storage_min_free_bytes=2**62)  # more than any disk here has free
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 503 and "free disk" in health.json()["reason"]


def test_delivered_but_not_recorded_is_never_reposted(gateway: GatewayHandle, sim: Stack,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """n8n accepted it, then the database refused to mark it delivered: no re-post storm, one copy at n8n."""
    subscribe(gateway)
    store = gateway.services.store
    refused: list[int] = []

    async def disk_full(item_id: int, *_: object) -> None:
        refused.append(item_id)
        raise StorageError("storage write failed: database or disk is full")

    monkeypatch.setattr(store, "delivered", disk_full)
    sim.avito.customer_says(USER, _chats(sim, 1)[0], "один раз")
    sim.n8n.wait_for(1, timeout=10, path="avito")
    for _ in range(40):  # 20 virtual seconds of forwarding passes
        gateway.api.post("/api/outbox/flush")
        sim.avito.advance(0.5)
    assert len(sim.n8n.received("avito")) == 1
    assert 1 <= len(refused) <= 8, f"the mark was retried {len(refused)} times in 20 s: no backoff"
    monkeypatch.undo()
    sim.avito.advance(60)
    gateway.api.post("/api/outbox/flush")
    assert gateway.api.get("/api/outbox", params={"status": "delivered"}).json()["items"]
    assert len(sim.n8n.received("avito")) == 1


# --- 4. forwarding across chats -------------------------------------------------------------------------------

def test_chats_forward_concurrently_and_each_keeps_its_order(gateway: GatewayHandle, sim: Stack) -> None:
    """n8n takes 1.5 s per request: 6 chats arrive together (serial forwarding spreads them over 7.5 s)."""
    subscribe(gateway)
    sim.n8n.add_fault(route="POST /webhook/avito", effect="delay", delay=1.5, times=None, required=False)
    chats = _chats(sim, 6)
    for n, chat in enumerate(chats):
        sim.avito.customer_says(USER, chat, f"первое {n}")
        sim.avito.customer_says(USER, chat, f"второе {n}")
    received = sim.n8n.wait_for(12, timeout=30, path="avito")
    firsts = [r["seen_at"] for r in received if r["body"]["text"].startswith("первое")]
    assert max(firsts) - min(firsts) < 1.5, f"first messages of 6 chats spread over {max(firsts) - min(firsts):.1f} s"
    for n, chat in enumerate(chats):
        texts = [r["body"]["text"] for r in received if r["body"]["external_chat_id"] == chat]
        assert texts == [f"первое {n}", f"второе {n}"]


def test_a_rate_limited_chat_read_never_holds_the_message_back(gateway: GatewayHandle, sim: Stack) -> None:
    """The chat read only fills in the customer's name: a 429 with Retry-After 4 must not delay delivery."""
    subscribe(gateway)
    sim.avito.add_fault(route="GET /messenger/v2/accounts/*/chats/*", status=429, headers={"Retry-After": "4"},
                        body={"result": {"message": "Too many requests", "status": False}}, times=None)
    before = sim.clock.now()
    sim.avito.customer_says(USER, _chats(sim, 1)[0], "срочно")
    (received,) = sim.n8n.wait_for(1, timeout=10, path="avito")
    assert received["body"]["text"] == "срочно" and received["body"]["client_name"] is None
    assert sim.clock.now() - before < 4, "the forwarder waited out Avito's Retry-After for the customer's name"


# --- 6. webhook authenticity ----------------------------------------------------------------------------------

def test_self_subscription_uses_a_secret_path_and_closes_the_open_one(make_gateway: Any, sim: Stack,
                                                                       tmp_path: Path) -> None:
    gateway = make_gateway()
    assert httpx.get(f"{gateway.url}/info").json()["webhook_auth"] == "open"
    assert httpx.post(f"{gateway.url}/webhook/avito", json={}).status_code == 200  # an existing subscription works
    answer = gateway.api.post("/api/webhook/subscribe", json={"url": f"{gateway.url}/webhook/avito"})
    assert answer.status_code == 200 and answer.json()["url"] == f"{gateway.url}/webhook/avito/***"
    (subscription,) = sim.avito.account(USER)["subscriptions"]
    secret = subscription["url"].rsplit("/", 1)[-1]
    assert len(secret) >= 24 and subscription["url"] == f"{gateway.url}/webhook/avito/{secret}"
    assert httpx.post(f"{gateway.url}/webhook/avito", json={}).status_code == 404  # injection closed
    assert httpx.get(f"{gateway.url}/info").json()["webhook_auth"] == "secret_path"
    assert httpx.get(f"{gateway.url}/health").json()["webhook_auth"] == "secret_path"
    secret_file = tmp_path / "gateway-data" / "webhook-secret"
    assert secret_file.read_text().strip() == secret and stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    sim.avito.customer_says(USER, _chats(sim, 1)[0], "через секретный путь")
    assert sim.n8n.wait_for(1, timeout=10, path="avito")
    gateway.stop()
    again = make_gateway()  # a restart on the same data keeps the secret and the closed plain path
    assert again.services.webhook_auth.secret == secret
    assert httpx.post(f"{again.url}/webhook/avito", json={}).status_code == 404


def test_the_secret_path_never_reaches_a_log_line(sim: Stack, tmp_path: Path) -> None:
    process = GatewayProcess(avito_url=sim.urls["avito"], n8n_webhook_url=f"{sim.urls['n8n']}/webhook/avito",
                             client_id="sim-client-id", client_secret="sim-client-secret", user_id=USER,
                             port=free_port(), data_dir=str(tmp_path / "data"))
    process.start()
    try:
        assert any("webhook authenticity" in line for line in process.output), "no startup warning while open"
        process.subscribe()
        secret = (tmp_path / "data" / "webhook-secret").read_text().strip()
        sim.avito.customer_says(USER, _chats(sim, 1)[0], "лог")
        sim.n8n.wait_for(1, timeout=10, path="avito")
        httpx.post(f"{process.url}/webhook/avito/{secret}x", json={})  # a wrong guess is logged too
    finally:
        process.stop()
    log = "".join(process.output)
    assert "POST /webhook/avito/*** HTTP/1.1\" 200" in log
    assert secret not in log


def test_a_configured_secret_closes_the_plain_path_from_the_start(make_gateway: Any) -> None:
    gateway = make_gateway(webhook_secret="configured-secret-0123")
    assert httpx.get(f"{gateway.url}/info").json()["webhook_auth"] == "secret_path"
    assert httpx.post(f"{gateway.url}/webhook/avito", json={}).status_code == 404
    assert httpx.post(f"{gateway.url}/webhook/avito/configured-secret-0123", json={}).status_code == 200


@pytest.mark.parametrize("guess", ["configured-secret-012", "configured-secret-0124", "xonfigured-secret-0123",
                                   "configured-secret-01234", "CONFIGURED-SECRET-0123", "%2e%2e"])
def test_webhook_secret_guesses_get_404(make_gateway: Any, guess: str) -> None:
    gateway = make_gateway(webhook_secret="configured-secret-0123")
    assert httpx.post(f"{gateway.url}/webhook/avito/{guess}", json={}).status_code == 404


# --- 7. storage stays bounded -------------------------------------------------------------------------------------

def test_retention_forgets_delivered_messages_and_gives_the_space_back(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(retention_seconds=3600, rejected_keep=50)
    subscribe(gateway)
    chats = _chats(sim, 4)
    for n in range(200):
        sim.avito.customer_says(USER, chats[n % 4], f"сообщение {n} " + "текст " * 100)
    for _ in range(100):
        httpx.post(gateway.webhook_url(), content=b"junk" * 20_000)
    sim.n8n.wait_for(200, timeout=30, path="avito")
    gateway.api.post("/api/outbox/flush")
    store = gateway.services.store
    full = asyncio.run(store.size_bytes())
    assert asyncio.run(store.counts())["rejected"] == 100
    sim.avito.advance(7200)
    removed = asyncio.run(gateway.served.app.state.retention.sweep())
    assert removed["outbox"] == 200 and removed["inbound"] >= 200 and removed["rejected"] == 100
    after = asyncio.run(store.size_bytes())
    assert after < full / 3, (after, full)
    sim.avito.customer_says(USER, chats[0], "после уборки")  # still works, still deduplicates
    assert sim.n8n.wait_for(201, timeout=10, path="avito")[-1]["body"]["text"] == "после уборки"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_file_and_memory_stay_bounded_over_a_long_run(sim: Stack, tmp_path: Path) -> None:
    """3 rounds of 250 messages, 100 sends with fresh idempotency keys and 50 junk bodies of 80 KB each, with a
    1 s retention: the file and the process's RSS after the last round stay near the first round's."""
    data = tmp_path / "data"
    process = GatewayProcess(avito_url=sim.urls["avito"], n8n_webhook_url=f"{sim.urls['n8n']}/webhook/avito",
                             client_id="sim-client-id", client_secret="sim-client-secret", user_id=USER,
                             port=free_port(), data_dir=str(data),
                             extra_env={"RETENTION_SECONDS": "1", "RETENTION_SWEEP_INTERVAL": "0.5",
                                        "RATE_LIMIT_REQUESTS": "100000", "OUTBOX_POLL_INTERVAL": "0.02"})
    process.start()
    assert process.proc is not None
    sizes, rss = [], []
    try:
        process.subscribe()
        secret = (data / "webhook-secret").read_text().strip()
        chats = _chats(sim, 4)
        api = httpx.Client(base_url=process.url, headers={"X-API-Key": API_KEY}, timeout=30)
        delivered = 0
        for round_no in range(3):
            for n in range(250):
                sim.avito.customer_says(USER, chats[n % 4], f"раунд {round_no} сообщение {n} " + "слово " * 60)
            for n in range(100):
                api.post("/api/messages/send", json={"chat_id": chats[n % 4], "text": f"ответ {round_no}-{n}"},
                         headers={"Idempotency-Key": f"r{round_no}-{n}"})
            for _ in range(50):
                httpx.post(f"{process.url}/webhook/avito/{secret}", content=b"x" * 80_000)
            delivered += 250
            sim.n8n.wait_for(delivered, timeout=60, path="avito")
            threading.Event().wait(2.0)  # real time: two sweeps of the 1 s retention
            sizes.append((data / "gateway.sqlite3").stat().st_size + (data / "gateway.sqlite3-wal").stat().st_size)
            rss.append(_rss_kib(process.proc.pid))
        api.close()
    finally:
        process.stop()
    print(f"file bytes per round {sizes}, RSS KiB per round {rss}")
    assert sizes[-1] <= max(sizes[0] * 1.5, 2 * 1024 * 1024), sizes
    assert rss[-1] <= rss[0] * 1.25, rss


# --- 8. smaller ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chat_id", [".", ".."])
def test_dot_chat_ids_never_reach_avito(gateway: GatewayHandle, sim: Stack, chat_id: str) -> None:
    answers = [
        gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "x"}),
        gateway.api.post("/api/messages/send/bulk", json={"chat_ids": [chat_id], "text": "x"}),
        gateway.api.get(f"/api/chats/{chat_id.replace('.', '%2E')}/messages"),
        gateway.api.post(f"/api/chats/{chat_id.replace('.', '%2E')}/read"),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400], [a.text for a in answers]
    assert sim.avito.journal(method="POST", path="/messenger/v1/accounts/*/messages") == []


@pytest.mark.parametrize("retry_after", ["inf", "1e400", "nan", "-5", "soon"])
def test_odd_retry_after_values_are_ignored_not_trusted(make_gateway: Any, sim: Stack, retry_after: str) -> None:
    gateway = make_gateway(retry_min_wait=1, retry_max_wait=2, max_retries=2)
    route = "GET /messenger/v2/accounts/*/chats"
    sim.avito.add_fault(route=route, status=429, headers={"Retry-After": retry_after}, times=None, required=False,
                        body={"result": {"message": "Too many requests", "status": False}})
    before = sim.clock.now()
    answer = gateway.api.get("/api/chats")
    assert answer.status_code == 429 and answer.json()["success"] is False, answer.text
    assert answer.json()["retry_after"] is None
    calls = sim.avito.journal(method="GET", path="/messenger/v2/accounts/*/chats")
    assert len(calls) == 3 and sim.clock.now() - before >= 1.0, "retried without the gateway's own backoff"


def test_replay_of_an_id_past_sqlites_range_is_404(gateway: GatewayHandle) -> None:
    for item in ("99999999999999999999", "9223372036854775808", "0", "-1"):
        answer = gateway.api.post(f"/api/outbox/{item}/replay")
        assert answer.status_code in (400, 404) and answer.json()["success"] is False, (item, answer.text)
    assert gateway.api.post("/api/outbox/99999999999999999999/replay").status_code == 404


def _gateway_cli(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "AVITO_CLIENT_ID": "sim-client-id", "AVITO_CLIENT_SECRET": "sim-secret",
            "API_KEY": "test-api-key", "SERVER_PORT": str(free_port()), "DATA_DIR": str(tmp_path / "d")}
    return subprocess.run([sys.executable, "-m", "avito_gateway"], env={**base, **env}, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize(("env", "named"), [
    ({"DATA_DIR": "/proc/no-such-dir/data"}, "DATA_DIR"),
    ({"API_KEY": " "}, "API_KEY"),
    ({"API_KEY": " key-with-spaces "}, "API_KEY"),
])
def test_unusable_settings_stop_the_gateway_before_it_listens(tmp_path: Path, env: dict[str, str], named: str) -> None:
    done = _gateway_cli(env, tmp_path)
    assert done.returncode == 2
    assert "listening on" not in done.stdout and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert named in line


def test_a_second_gateway_on_the_same_sqlite_file_is_refused(sim: Stack, tmp_path: Path) -> None:
    """Two processes on one DATA_DIR would take each other's outbox claims: the second is refused, naming the
    first one's pid and the way to run replicas; the first keeps serving."""
    first = GatewayProcess(avito_url=sim.urls["avito"], n8n_webhook_url=f"{sim.urls['n8n']}/webhook/avito",
                           client_id="sim-client-id", client_secret="sim-client-secret", user_id=USER,
                           api_key=API_KEY, port=free_port(), data_dir=str(tmp_path / "d"))
    first.start()
    try:
        done = _gateway_cli({"AVITO_API_BASE_URL": sim.urls["avito"]}, tmp_path)
        assert first.proc is not None
        assert done.returncode == 2 and "listening on" not in done.stdout, done.stderr
        assert f"is in use by another gateway (pid {first.proc.pid})" in done.stderr
        assert "DATABASE_URL" in done.stderr
        assert httpx.get(f"{first.url}/health").status_code == 200
    finally:
        first.stop()
    # the lock goes with the process: the next gateway on the same data starts
    again = GatewayProcess(avito_url=sim.urls["avito"], n8n_webhook_url=f"{sim.urls['n8n']}/webhook/avito",
                           client_id="sim-client-id", client_secret="sim-client-secret", user_id=USER,
                           api_key=API_KEY, port=free_port(), data_dir=str(tmp_path / "d"))
    again.start()
    again.stop()


# --- 9. at-least-once delivery meets an idempotent CRM ----------------------------------------------------------------

def test_a_redelivered_message_never_makes_a_second_appeal_message_or_answer(gateway: GatewayHandle,
                                                                             sim: Stack) -> None:
    sim.n8n.flows(mode="flows", gateway_url=gateway.url, gateway_api_key=API_KEY, batch_window=30)
    subscribe(gateway)
    chat = _chats(sim, 1)[0]
    ours_before = [m for m in sim.avito.chat(USER, chat)["messages"] if m["direction"] == "out"]
    said = sim.avito.customer_says(USER, chat, "Аккумулятор в наличии?")["message"]["id"]
    (first,) = sim.n8n.wait_for(1, timeout=10, path="avito")
    again = httpx.post(sim.n8n.webhook_url(), json=first["body"], headers={"Idempotency-Key": f"avito-{said}"})
    assert again.status_code == 200  # n8n answers as usual ...
    sim.n8n.wait_event("duplicate", timeout=10)  # ... and BAT IN recognises the repeat
    sim.avito.advance(31)
    sim.n8n.wait_event("sent", timeout=10)
    (appeal,) = sim.n8n.appeals()
    batches = sim.n8n.appeal(appeal["id"])["batches"]
    assert [len(b["messages"]) for b in batches] == [1]
    assert len(sim.n8n.history()) == 1
    answers = [m for m in sim.avito.chat(USER, chat)["messages"] if m["direction"] == "out"]
    assert len(answers) == len(ours_before) + 1, "the customer got the answer twice"


# --- stopping -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("turns", range(4))
def test_a_stop_that_lands_as_the_forwarder_wakes_still_stops_it(tmp_path: Path, turns: int) -> None:
    """SIGTERM arriving on the same loop turn as a wake-up (a message just stored, a delivery just finished): on
    Python 3.11 ``asyncio.wait_for`` dropped that cancel and the gateway never exited. Every turn offset is tried."""
    from avito_gateway.clock import SystemClock
    from avito_gateway.held_writes import HeldWrites
    from avito_gateway.outbox import Forwarder
    from avito_gateway.settings import GatewaySettings
    from avito_gateway.store import SqliteStore

    settings = GatewaySettings(_env_file=None, api_key="k", avito_client_id="i", avito_client_secret="s",  # type: ignore[call-arg]
                               data_dir=str(tmp_path), outbox_poll_interval=30)

    async def stop_on_wake() -> bool:
        forwarder = Forwarder(settings, SqliteStore(tmp_path / "gateway.db"), SystemClock(), lambda _: None, owner="t",
                              held=HeldWrites(SystemClock()))
        forwarder.start()
        await asyncio.sleep(0.05)  # waiting for work
        forwarder.wake.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        stopping = asyncio.ensure_future(forwarder.stop())
        done, _ = await asyncio.wait({stopping}, timeout=2)
        return bool(done)

    assert asyncio.run(stop_on_wake()), "the forwarder kept running after stop()"
