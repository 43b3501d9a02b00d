"""``make bench``: the harness's own speed and the gateway's overhead, rerunnable by anyone.

Servers run as separate processes (the fake Avito, the fake n8n, our
gateway), load comes from this process over loopback, bounded in count and
time, after a warm-up. Results: a table, and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from avito_harness.stack.gateway_process import free_port
from bench import hot, peer
from bench.loadgen import Result, load, percentile

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
USER = 100000001
WEBHOOK_SECRET = "bench-webhook-secret"
console = Console(highlight=False)


@contextmanager
def process(cmd: list[str], env: dict[str, str], health: str) -> Iterator[float]:
    """A server process; yields its start-to-healthy time."""
    with peer.server(cmd, health, env) as (_, ready):
        yield ready


def fake(service: str, port: int, **env: str) -> Any:
    return process([str(BIN / "avito-harness"), "serve", service, "--port", str(port)],
                   {"SIM_SEED": "42", **env}, f"http://127.0.0.1:{port}/_sim/health")


def token(avito: str) -> str:
    body = httpx.post(f"{avito}/token", data={"grant_type": "client_credentials", "client_id": "sim-client-id",
                                              "client_secret": "sim-client-secret"}).json()
    return str(body["access_token"])


def bench_fake_avito(results: list[dict[str, Any]]) -> dict[str, float]:
    port = free_port()
    avito = f"http://127.0.0.1:{port}"
    with fake("avito", port):
        auth = {"Authorization": f"Bearer {token(avito)}"}
        chat = httpx.get(f"{avito}/messenger/v2/accounts/{USER}/chats", headers=auth).json()["chats"][0]["id"]
        send_url = f"{avito}/messenger/v1/accounts/{USER}/chats/{chat}/messages"
        direct: dict[str, float] = {}
        for concurrency in (1, 16, 64):
            r = load("fake Avito: send text", "POST", send_url, concurrency=concurrency, requests=4000, headers=auth,
                     body=lambda n: {"type": "text", "message": {"text": f"bench {n}"}})
            results.append(r.summary())
            direct[f"c{concurrency}"] = percentile(sorted(r.latencies_ms), 50)
            r = load("fake Avito: list messages", "GET", f"{avito}/messenger/v3/accounts/{USER}/chats/{chat}/messages/?limit=20",
                     concurrency=concurrency, requests=3000, headers=auth)
            results.append(r.summary())
            r = load("fake Avito: token", "POST", f"{avito}/token", concurrency=concurrency, requests=3000,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
            results.append(_form_token_fix(r))
        return direct


def _form_token_fix(r: Result) -> dict[str, Any]:
    """/token with an empty form answers 400 quickly; what is measured is the endpoint's handling cost."""
    summary = r.summary()
    summary["name"] = "fake Avito: token (parameter check)"
    return summary


def gateway_env(url: dict[str, str], port: int) -> dict[str, str]:
    """Our gateway against the bench's fakes, limits lifted, one webhook secret for every replica."""
    return {"API_KEY": "bench-key", "AVITO_CLIENT_ID": "sim-client-id", "AVITO_CLIENT_SECRET": "sim-client-secret",
            "AVITO_USER_ID": str(USER), "AVITO_API_BASE_URL": url["avito"],
            "N8N_WEBHOOK_URL": f"{url['n8n']}/webhook/avito", "SERVER_PORT": str(port),
            "RATE_LIMIT_REQUESTS": "10000000", "OUTBOX_POLL_INTERVAL": "0.01", "WEBHOOK_SECRET": WEBHOOK_SECRET}


@contextmanager
def full_stack(**extra_env: str) -> Iterator[dict[str, str]]:
    ports = {n: free_port() for n in ("avito", "n8n", "gateway")}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    with fake("avito", ports["avito"], SIM_PUBLIC_HOST=url["avito"]), \
            fake("n8n", ports["n8n"], SIM_N8N_MODE="record"), \
            process([str(BIN / "avito-gateway")], {**gateway_env(url, ports["gateway"]), **extra_env},
                    f"{url['gateway']}/health"):
        yield url


def bench_gateway_send(results: list[dict[str, Any]]) -> dict[str, float]:
    with full_stack() as url:
        avito = url["avito"]
        auth = {"Authorization": f"Bearer {token(avito)}"}
        chat = httpx.get(f"{avito}/messenger/v2/accounts/{USER}/chats", headers=auth).json()["chats"][0]["id"]
        out: dict[str, float] = {}
        for concurrency in (1, 16):
            direct = load("direct fake Avito send (same stack)", "POST",
                          f"{avito}/messenger/v1/accounts/{USER}/chats/{chat}/messages", concurrency=concurrency,
                          requests=2000, headers=auth, body=lambda n: {"type": "text", "message": {"text": f"d {n}"}})
            via = load("gateway /api/messages/send", "POST", f"{url['gateway']}/api/messages/send",
                       concurrency=concurrency, requests=2000, headers={"X-API-Key": "bench-key"},
                       body=lambda n: {"chat_id": chat, "text": f"g {n}"})
            results += [direct.summary(), via.summary()]
            d50, g50 = percentile(sorted(direct.latencies_ms), 50), percentile(sorted(via.latencies_ms), 50)
            out[f"c{concurrency}_overhead_p50_ms"] = round(g50 - d50, 3)
            out[f"c{concurrency}_ratio_p50"] = round(g50 / d50, 2) if d50 else 0.0
        return out


def bench_webhooks() -> dict[str, Any]:
    with full_stack() as url:
        gateway, avito, n8n = url["gateway"], url["avito"], url["n8n"]
        httpx.post(f"{gateway}/api/webhook/subscribe", headers={"X-API-Key": "bench-key"},
                   json={"url": f"{gateway}/webhook/avito"}).raise_for_status()
        chats = [c["id"] for c in httpx.get(f"{avito}/_sim/accounts/{USER}").json()["chats"]]
        # steady: one message at a time
        for n in range(200):
            httpx.post(f"{avito}/_sim/accounts/{USER}/chats/{chats[n % len(chats)]}/messages", json={"text": f"s {n}"})
        steady = [d["duration_ms"] for d in httpx.get(f"{avito}/_sim/webhooks/deliveries").json()["deliveries"]]
        httpx.get(f"{n8n}/_sim/received/wait", params={"count": 200, "timeout": 60}, timeout=70)
        httpx.delete(f"{n8n}/_sim/received")
        httpx.post(f"{avito}/_sim/reset", params={"seed": 7})  # fresh log and new ids (the gateway dedupes by id)
        httpx.post(f"{gateway}/api/webhook/subscribe", headers={"X-API-Key": "bench-key"},
                   json={"url": f"{gateway}/webhook/avito"}).raise_for_status()
        chats = [c["id"] for c in httpx.get(f"{avito}/_sim/accounts/{USER}").json()["chats"]]
        started = time.perf_counter()
        burst = load("inject 1000 customer messages (burst)", "POST", f"{avito}/_sim/accounts/{USER}/chats/{chats[0]}/messages",
                     concurrency=32, requests=1000, warmup=0, body=lambda n: {"text": f"b {n}", "wait": False})
        got = httpx.get(f"{n8n}/_sim/received/wait", params={"count": 1000, "timeout": 60}, timeout=70).json()["received"]
        all_at_n8n = time.perf_counter() - started
        answers = sorted(d["duration_ms"] for d in httpx.get(f"{avito}/_sim/webhooks/deliveries",
                                                               params={"wait_count": 1000, "timeout": 30}).json()["deliveries"])
        return {
            "steady_answer_p50_ms": round(statistics.median(steady), 3),
            "steady_answer_p99_ms": round(percentile(sorted(steady), 99), 3),
            "burst_messages": burst.requests, "burst_delivered_to_n8n": len(got),
            "burst_answer_p50_ms": round(percentile(answers, 50), 3),
            "burst_answer_p99_ms": round(percentile(answers, 99), 3),
            "burst_all_at_n8n_s": round(all_at_n8n, 2),
        }


def _hook(message_id: str, chat_id: str) -> dict[str, Any]:
    """A v3 text webhook as Avito posts it."""
    value = {"id": message_id, "chat_id": chat_id, "user_id": USER, "author_id": 424242, "created": 1_700_000_000,
             "type": "text", "chat_type": "u2i", "content": {"text": f"ingest {message_id}"}}
    return {"id": f"hook-{message_id}", "version": "v3.0.0", "timestamp": 1_700_000_000,
            "payload": {"type": "message", "value": value}}


def _ingest(urls: list[str], chats: list[str], tag: str, total: int = 3000, concurrency: int = 16) -> dict[str, Any]:
    """``total`` webhooks straight to the replicas' secret path at once, ``concurrency`` connections split over
    them; every message a new one (nothing is deduplicated away)."""
    shares = [concurrency // len(urls) + (1 if n < concurrency % len(urls) else 0) for n in range(len(urls))]
    outcomes: list[Result] = []

    def run(n: int) -> None:
        outcomes.append(load(f"ingest {tag} replica {n}", "POST", f"{urls[n]}/webhook/avito/{WEBHOOK_SECRET}",
                             concurrency=shares[n], requests=total // len(urls), seconds=60, warmup=5,
                             body=lambda k: _hook(f"{tag}-{n}-{k}", chats[k % len(chats)])))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = sorted(ms for r in outcomes for ms in r.latencies_ms)
    requests, seconds = sum(r.requests for r in outcomes), max(r.seconds for r in outcomes)
    return {"replicas": len(urls), "concurrency": concurrency, "requests": requests,
            "errors": sum(r.errors for r in outcomes), "rps": round(requests / seconds, 1),
            "p50_ms": round(percentile(answers, 50), 3), "p99_ms": round(percentile(answers, 99), 3)}


def bench_replicas() -> dict[str, Any]:
    """Webhook ingest: 1 gateway on SQLite, then 1 and 3 replicas sharing one Postgres (a fresh database each)."""
    from avito_harness.real.postgres import PostgresError, PostgresServer

    out: dict[str, Any] = {}
    with full_stack() as url:  # its gateway (SQLite) is the first figure; the fakes serve the replicas too
        chats = [c["id"] for c in httpx.get(f"{url['avito']}/_sim/accounts/{USER}").json()["chats"]]
        out["sqlite_1"] = _ingest([url["gateway"]], chats, "sqlite")
        try:
            server = PostgresServer().start()
        except PostgresError as exc:
            out["postgres"] = f"not measured: {exc}"
            return out
        try:
            for count in (1, 3):
                with replica_set(url, server.new_database(f"bench_{count}"), count) as urls:
                    out[f"postgres_{count}"] = _ingest(urls, chats, f"pg{count}")
        finally:
            server.stop()
    return out


@contextmanager
def replica_set(url: dict[str, str], database_url: str, count: int) -> Iterator[list[str]]:
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for n, port in enumerate(ports):
            stack.enter_context(process([str(BIN / "avito-gateway")], {
                **gateway_env(url, port), "DATABASE_URL": database_url, "REPLICA_ID": f"bench-{n}",
            }, f"http://127.0.0.1:{port}/health"))
        yield [f"http://127.0.0.1:{port}" for port in ports]


def bench_starts() -> dict[str, float]:
    port = free_port()
    with fake("avito", port) as cold:
        fake_cold = cold
    started = time.perf_counter()
    result = subprocess.run([str(BIN / "python"), "-c", (
        "import time; t=time.perf_counter();"
        "from avito_harness.stack.local import Stack; from avito_harness.fakes.settings import SimSettings;"
        "s=SimSettings(avito_port=0,n8n_port=0,stt_port=0);"
        "t2=time.perf_counter(); st=Stack(s); st.serve(); print(time.perf_counter()-t2, t2-t); st.stop()")],
        capture_output=True, text=True, cwd=ROOT, check=True)
    stack_start, imports = (float(v) for v in result.stdout.split())
    whole = time.perf_counter() - started
    run_started = time.perf_counter()
    run = subprocess.run([str(BIN / "avito-harness"), "run"], capture_output=True, text=True, cwd=ROOT)
    return {"fake_avito_process_to_healthy_s": round(fake_cold, 3), "stack_start_s": round(stack_start, 3),
            "stack_imports_s": round(imports, 3), "stack_process_total_s": round(whole, 3),
            "acceptance_run_s": round(time.perf_counter() - run_started, 2), "acceptance_exit": run.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hot-only", action="store_true",
                        help="only the fake Avito beside WireMock and the growth table (about 10 minutes)")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    console.print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}")
    console.print("1/7 fake Avito beside a warm WireMock ...")
    side = hot.bench_peer()
    console.print("2/7 the four hot calls as the fake's state grows ...")
    growth = hot.bench_growth()
    if args.hot_only:
        hot.print_peer(side, console)
        hot.print_growth(growth, console)
        return _finish({"peer": side, "growth": growth}, hot.peer_targets(side))
    console.print("3/7 fake Avito at concurrency 1, 16, 64 ...")
    bench_fake_avito(results)
    console.print("4/7 gateway send vs direct ...")
    overhead = bench_gateway_send(results)
    console.print("5/7 webhook ingest ...")
    webhooks = bench_webhooks()
    console.print("6/7 webhook ingest: SQLite, 1 and 3 replicas on Postgres ...")
    replicas = bench_replicas()
    console.print("7/7 cold start and acceptance run ...")
    starts = bench_starts()
    table = Table(title="avito-harness bench (loopback, load from this process)")
    for column in ("name", "c", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for r in results:
        table.add_row(str(r["name"]), str(r["concurrency"]), str(r["requests"]), str(r["errors"]), f"{r['rps']:.0f}",
                      f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}")
    console.print(table)
    hot.print_peer(side, console)
    hot.print_growth(growth, console)
    via16 = next(r for r in results if r["name"] == "gateway /api/messages/send" and r["concurrency"] == 16)
    ingest_sqlite = replicas["sqlite_1"]
    targets = hot.peer_targets(side)
    targets.update({
        "gateway send overhead p50 <= 1 ms (c1)": (overhead["c1_overhead_p50_ms"], overhead["c1_overhead_p50_ms"] <= 1),
        "gateway >= 1500 sends/s at c16": (via16["rps"], via16["rps"] >= 1500),
        "webhook ingest >= 2000/s (SQLite)": (ingest_sqlite["rps"], ingest_sqlite["rps"] >= 2000),
        "webhook answer p99 <= 20 ms while ingesting": (ingest_sqlite["p99_ms"], ingest_sqlite["p99_ms"] <= 20),
    })
    for name, value in {**overhead, **webhooks, **starts}.items():
        console.print(f"  {name}: {value}")
    ingest = Table(title="webhook ingest (3000 new messages straight to the gateways, 16 connections in all)")
    for column in ("store", "replicas", "requests", "errors", "req/s", "p50 ms", "p99 ms"):
        ingest.add_column(column, justify="left" if column == "store" else "right")
    for key, row in replicas.items():
        if isinstance(row, dict):
            ingest.add_row(key.split("_")[0], str(row["replicas"]), str(row["requests"]), str(row["errors"]),
                           f"{row['rps']:.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}")
        else:
            console.print(f"  {key}: {row}")
    console.print(ingest)
    return _finish({"peer": side, "growth": growth, "results": results, "gateway": overhead, "webhooks": webhooks,
                    "ingest": replicas, "starts": starts}, targets)


def _finish(figures: dict[str, Any], targets: dict[str, tuple[Any, bool]]) -> int:
    """Each target met or missed, and everything measured to bench/results/latest.json."""
    for name, (value, met) in targets.items():
        console.print(f"  {'[green]met[/green]' if met else '[red]missed[/red]'}  {name}: {value}")
    out = {"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
           "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
           **figures, "targets": {k: {"value": v, "met": m} for k, (v, m) in targets.items()}}
    path = ROOT / "bench" / "results" / "latest.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    console.print(f"written: {path}")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
