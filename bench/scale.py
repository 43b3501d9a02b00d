"""The scale curve (``python -m bench.scale``, part of ``make bench``): the gateway at 1, 10, 100 and 1,000 shops.

Each point is a judged ``avito-harness load`` run (Locust, the fakes in this process): the same total offered
load (``TOTAL_RATE`` customer messages and as many CRM replies a second, spread over the shops), so the curve shows
what the number of accounts costs, on SQLite and on PostgreSQL with 1 and 3 replicas. A point that loses or
duplicates anything is marked failed, whatever its speed. Written under ``scale`` in bench/results/latest.json
with the machine's facts.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from avito_harness.fakes.settings import SimSettings
from avito_harness.load.run import LoadOptions, run_load
from avito_harness.stack.local import Stack

__all__ = ["main", "scale_point"]

ROOT = Path(__file__).resolve().parent.parent
SHOPS = tuple(int(n) for n in os.environ.get("BENCH_SHOPS", "1,10,100,1000").split(","))
TOTAL_RATE = float(os.environ.get("BENCH_TOTAL_RATE", "40"))  # customer messages a second, all shops together
SECONDS = float(os.environ.get("BENCH_SCALE_SECONDS", "20"))
console = Console(highlight=False)


@contextmanager
def _database(kind: str) -> Iterator[str | None]:
    """None for SQLite; a fresh database on a PostgreSQL server the bench starts for the Postgres points."""
    if kind == "sqlite":
        yield None
        return
    from avito_harness.real.postgres import PostgresServer

    with PostgresServer() as server:
        yield server.new_database("scale")


def scale_point(shops: int, store: str, replicas: int) -> dict[str, Any]:
    """One judged load run: throughput (messages at n8n and replies posted a second), end-to-end p99, verdict."""
    settings = SimSettings.from_env(avito_port=0, n8n_port=0, stt_port=0, n8n_mode="record", clock="system")
    with _database(store) as database_url, tempfile.TemporaryDirectory(prefix="bench-scale-") as work, \
            Stack.start(settings) as stack:
        result = run_load(LoadOptions(shops=shops, chats=1, duration=SECONDS, rate=TOTAL_RATE / shops,
                                      replicas=replicas, database_url=database_url), stack, Path(work))
    verdict = result.verdict
    return {"shops": shops, "store": store, "replicas": replicas, "passed": verdict.passed,
            "messages_per_s": round(verdict.delivered / SECONDS, 1),
            "replies_per_s": round((verdict.replies_sent - len(verdict.replies_lost)) / SECONDS, 1),
            "inbound_p99_s": verdict.inbound_latency.get("p99"), "reply_p99_s": verdict.reply_latency.get("p99"),
            "fairness": verdict.fairness, "lost": len(verdict.lost), "duplicated": len(verdict.duplicated),
            "cpu_seconds": result.cpu_seconds}


def main() -> int:
    points = []
    for store, replicas in (("sqlite", 1), ("postgres", 1), ("postgres", 3)):
        for shops in SHOPS:
            console.print(f"scale: {shops} shop(s), {store} x{replicas} ...")
            points.append(scale_point(shops, store, replicas))
    table = Table(title=f"scale curve: {TOTAL_RATE:g} messages and {TOTAL_RATE:g} replies a second in all, "
                        f"{SECONDS:g} s a point", header_style="bold")
    for column in ("store", "replicas", "shops", "msg/s at n8n", "replies/s", "Avito->n8n p99 s", "reply p99 s",
                   "CPU s gateway/fakes/Locust", "judged"):
        table.add_column(column)
    for p in points:
        cpu = p["cpu_seconds"]
        table.add_row(p["store"], str(p["replicas"]), str(p["shops"]), str(p["messages_per_s"]), str(p["replies_per_s"]),
                      str(p["inbound_p99_s"]), str(p["reply_p99_s"]),
                      f"{cpu['gateway']}/{cpu['fakes']}/{cpu['locust']}", "passed" if p["passed"] else "FAILED")
    console.print(table)
    latest = ROOT / "bench" / "results" / "latest.json"
    doc = json.loads(latest.read_text(encoding="utf-8")) if latest.exists() else {}
    doc["scale"] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()},
                    "total_rate": TOTAL_RATE, "seconds": SECONDS, "points": points}
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return 0 if all(p["passed"] for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
