"""``avito-harness load``: the fakes here, our gateway (or yours) for N shops, Locust's users against both, the
verdict from what the fakes saw. ``--workers N`` runs Locust distributed on this machine (a master and N workers);
on several machines, run the printed worker command on each (see the README)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from avito_harness.load.judge import LoadVerdict, judge, read_sent
from avito_harness.load.plan import FIRST_USER, LoadPlan, make_shops, write_accounts
from avito_harness.load.shards import Shard, shards
from avito_harness.stack.gateway_process import GatewayProcess, free_port, stop_process
from avito_harness.waiting import pause

__all__ = ["LoadOptions", "LoadResult", "run_load"]

#: Locust's users: a file Locust loads, never a module of the package (importing it would let gevent patch the
#: importing process), so it lives in a folder whose name is no Python identifier (never a package) and ships as
#: package data
LOCUSTFILE = Path(__file__).parent / "locust-users" / "locustfile.py"
SEED_ACCOUNT = (100000001, "sim-client-id", "sim-client-secret")  # the gateway's default account: not loaded


@dataclass(frozen=True)
class LoadOptions:
    shops: int = 10
    chats: int = 3
    duration: float = 30.0
    rate: float = 1.0  # customer messages a second per shop (replies the same)
    workers: int = 0  # 0: one Locust process; N: a master and N workers (Locust's distributed mode)
    web: bool = False  # Locust's web UI (127.0.0.1:8089) instead of headless
    gateway_cmd: str | None = None  # default: our gateway (avito-gateway)
    drain: float = 60.0  # seconds to wait for the last deliveries after the load stops
    replicas: int = 1  # gateways sharing DATABASE_URL, each serving every n-th shop (needs database_url when > 1)
    shards: int = 1  # fake Avito + fake n8n pairs, each a process of its own owning every n-th shop
    database_url: str | None = None  # the gateways' PostgreSQL (default: each its own SQLite)


@dataclass
class LoadResult:
    verdict: LoadVerdict
    cpu_seconds: dict[str, float]
    locust_summary: str
    elapsed: float

    shards: list[dict[str, Any]] = field(default_factory=list)  # per shard: its URL, its shops, what its n8n got

    def as_dict(self) -> dict[str, Any]:
        return {**self.verdict.as_dict(), "cpu_seconds": self.cpu_seconds, "elapsed": round(self.elapsed, 2),
                "shards": self.shards}


def _cpu(pid: int) -> float:
    """User + system seconds a process and its waited-for children used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def _gateways_cpu(gateways: list[GatewayProcess]) -> float:
    return sum(_cpu(g.proc.pid) for g in gateways if g.proc is not None)


def _fakes_cpu(fakes: list[Shard]) -> float:
    """This process (shard 0 and the run's own work) and every shard's processes."""
    return time.process_time() + sum(_cpu(pid) for fake in fakes for pid in fake.pids)


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _locust(plan_path: Path, options: LoadOptions, users: int, csv: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "AVITO_LOAD_PLAN": str(plan_path)}
    exe = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    run = ["-u", str(users), "-r", str(max(1, users)), "-t", f"{int(options.duration)}s", "--csv", str(csv),
           "--only-summary", "--stop-timeout", "10"]
    ui = ["--web-host", "127.0.0.1", "--autostart"] if options.web else ["--headless"]
    if options.workers <= 0:
        return [subprocess.Popen([*exe, *ui, *run], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)]
    port = free_port()
    master = subprocess.Popen([*exe, *ui, *run, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                               str(port), "--expect-workers", str(options.workers)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    workers = [subprocess.Popen([*exe, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
               for _ in range(options.workers)]
    return [master, *workers]


def _received(shards: list[Shard]) -> list[dict[str, Any]]:
    return [r for shard in shards for r in shard.n8n.received("load")]


def _drained(shards: list[Shard], expected: int, limit: float) -> None:
    """Wait until n8n has every message sent, or nothing new arrives for 3 s (bounded by ``limit``)."""
    deadline, last, quiet_since = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(_received(shards))
        if count >= expected:
            return
        if count != last:
            last, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since > 3:
            return
        pause(0.25)


def run_load(options: LoadOptions, stack: Any, work: Path) -> LoadResult:
    """The load against a stack that is serving (the caller owns it; shard 0 when ``options.shards`` > 1);
    ``work`` holds the plan and the users' files."""
    with shards(stack, options.shards) as fakes:
        return _run(options, stack, fakes, work)


def _run(options: LoadOptions, stack: Any, fakes: list[Shard], work: Path) -> LoadResult:
    started = time.perf_counter()
    shops = make_shops(stack.urls["avito"], options.shops, options.chats,
                       shards=[(f.avito_url, f.n8n_url) for f in fakes])
    for fake in fakes:
        fake.n8n.register("load")
    accounts = write_accounts(shops, stack.urls["n8n"], work / "accounts.yaml")
    user, client_id, secret = SEED_ACCOUNT
    command = tuple(options.gateway_cmd.split()) if options.gateway_cmd else (sys.executable, "-m", "avito_gateway")
    if options.replicas > 1 and not options.database_url:
        raise ValueError("replicas share one database: give a PostgreSQL URL (database_url)")
    database = {"DATABASE_URL": options.database_url} if options.database_url else {}
    gateways = [GatewayProcess(avito_url=stack.urls["avito"], n8n_webhook_url=f"{stack.urls['n8n']}/webhook/avito",
                               client_id=client_id, client_secret=secret, user_id=user, command=command,
                               data_dir=str(work / f"gateway-{n}"), extra_env={
                                   "ACCOUNTS_FILE": str(accounts), "RATE_LIMIT_REQUESTS": "1000000",
                                   "OUTBOX_POLL_INTERVAL": "0.02", **database})
                for n in range(max(1, options.replicas))]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for gateway in gateways:
            gateway.start()
        shops = [replace(shop, gateway_url=gateways[n % len(gateways)].url) for n, shop in enumerate(shops)]
        with httpx.Client(timeout=30) as client:
            for shop in shops:  # each shop's webhooks reach its replica
                answer = client.post(f"{shop.gateway_url}/api/webhook/subscribe", headers={"X-API-Key": shop.api_key},
                                     json={"url": f"{shop.gateway_url}/webhook/avito/{shop.webhook_secret}"})
                answer.raise_for_status()
        out = work / "sent"
        out.mkdir()
        plan = LoadPlan(stack.urls["avito"], gateways[0].url, shops, str(out), options.rate, options.rate)
        plan.write(work / "plan.json")
        cpu_before = {"gateway": _gateways_cpu(gateways), "fakes": _fakes_cpu(fakes), "locust": _children_cpu()}
        procs = _locust(work / "plan.json", options, users=2 * len(shops), csv=work / "locust")
        summary = (procs[0].communicate(timeout=options.duration + 300)[0] or b"").decode(errors="replace")
        for worker in procs[1:]:
            worker.wait(30)
        cpu_locust = _children_cpu() - cpu_before["locust"]  # every Locust process has been waited for
        sent = read_sent(out)
        _drained(fakes, sum(1 for s in sent if s["kind"] == "inbound" and s["status"] in (200, 201)), options.drain)
        cpu = {"gateway": _gateways_cpu(gateways) - cpu_before["gateway"],
               "fakes": _fakes_cpu(fakes) - cpu_before["fakes"], "locust": cpu_locust}
        avito_of = {f.avito_url: f.avito for f in fakes}
        chats = {(shop.user_id, chat): avito_of[shop.avito_url].chat(shop.user_id, chat)["messages"]
                 for shop in shops for chat in shop.chats}
        verdict = judge(sent, _received(fakes), chats)
        owned = [{"avito": f.avito_url, "n8n": f.n8n_url, "shops": sum(1 for s in shops if s.avito_url == f.avito_url),
                  "accounts": sorted(a["user_id"] for a in f.avito.accounts() if a["user_id"] >= FIRST_USER), "at_n8n": len(f.n8n.received("load"))} for f in fakes]
    finally:
        for proc in procs:
            stop_process(proc, grace=5)
        for gateway in gateways:
            gateway.stop()
    return LoadResult(verdict, {k: round(v, 2) for k, v in cpu.items()}, summary[-3000:],
                      time.perf_counter() - started, owned)

