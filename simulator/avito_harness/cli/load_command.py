"""``avito-harness load``: many shops against a gateway on Locust, judged (see :mod:`avito_harness.load`)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["run_load_command"]


def run_load_command(args: argparse.Namespace, console: Console) -> int:
    import importlib.util

    if importlib.util.find_spec("locust") is None:
        console.print("could not judge (exit 2) [setup_error]: the load runs on Locust: pip install "
                      "'avito-harness[load]'", markup=False)
        return 2
    if args.replicas > 1 and not args.database_url:
        console.print("could not judge (exit 2) [usage_error]: --replicas share one database: give --database-url "
                      "postgresql://...", markup=False)
        return 2
    if args.shops < 1 or args.chats < 1 or not args.duration > 0 or not args.rate > 0 or args.workers < 0 \
            or args.replicas < 1 or args.shards < 1:
        console.print("could not judge (exit 2) [usage_error]: --shops, --chats at least 1; --duration, --rate more "
                      "than 0; --workers 0 or more; --replicas, --shards at least 1", markup=False)
        return 2
    from avito_harness.fakes.settings import SimSettings
    from avito_harness.load.run import LoadOptions, run_load
    from avito_harness.stack.gateway_process import GatewayProcessError
    from avito_harness.stack.local import Stack

    options = LoadOptions(shops=args.shops, chats=args.chats, duration=args.duration, rate=args.rate,
                          workers=args.workers, web=args.web, gateway_cmd=args.gateway_cmd, replicas=args.replicas,
                          database_url=args.database_url, shards=args.shards)
    settings = SimSettings.from_env(avito_port=0, n8n_port=0, stt_port=0, n8n_mode="record", clock="system")
    console.print(f"load: {args.shops} shops x {args.chats} chats, {args.rate:g} message(s) and {args.rate:g} "
                  f"reply(ies) a second per shop for {args.duration:g} s; Locust "
                  + (f"distributed: a master and {args.workers} workers" if args.workers else "in one process"),
                  markup=False)
    try:
        with tempfile.TemporaryDirectory(prefix="avito-harness-load-") as work, Stack.start(settings) as stack:
            result = run_load(options, stack, Path(work))
    except GatewayProcessError as exc:
        console.print(f"could not judge (exit 2) [setup_error]: the gateway did not start: {exc}", markup=False)
        return 2
    verdict = result.verdict
    table = Table(title="load, judged", header_style="bold")
    for column in ("", "value"):
        table.add_column(column)
    rows = [("shops whose customers wrote", f"{verdict.shops_loaded} of {args.shops}"),
            ("customer messages sent", verdict.sent), ("at n8n", verdict.delivered), ("lost", len(verdict.lost)),
            ("duplicated", len(verdict.duplicated)), ("chats out of order", len(verdict.order_violations)),
            ("replies sent", verdict.replies_sent), ("replies lost", len(verdict.replies_lost)),
            ("replies posted twice", len(verdict.replies_duplicated)),
            ("Avito -> n8n p50/p95/p99 s", "/".join(str(v) for v in verdict.inbound_latency.values())),
            ("CRM send p50/p95/p99 s", "/".join(str(v) for v in verdict.reply_latency.values())),
            ("slowest shop p99 / median shop p99", verdict.fairness),
            ("errors", ", ".join(f"{k}: {v}" for k, v in verdict.errors.items()) or "none"),
            ("CPU s: gateway / fakes / Locust", " / ".join(str(result.cpu_seconds[k])
                                                          for k in ("gateway", "fakes", "locust")))]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result.as_dict(), indent=1), encoding="utf-8")
    line = ("passed (exit 0): every message at n8n once and in order, every reply posted once" if verdict.passed
            else "defects found (exit 1): " + ", ".join(
                f"{n} {what}" for n, what in ((len(verdict.lost), "lost"), (len(verdict.duplicated), "duplicated"),
                                              (len(verdict.order_violations), "chats out of order"),
                                              (len(verdict.replies_lost), "replies lost"),
                                              (len(verdict.replies_duplicated), "replies posted twice")) if n)
            or "defects found (exit 1): nothing was sent")
    console.print(f"verdict: {line}", markup=False)
    return 0 if verdict.passed else 1
