"""``avito-harness``: the command line.

``avito-harness sim`` serves the fake Avito and the fake n8n receiver on
127.0.0.1 with demo data, prints their URLs and demo credentials, and runs
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from simulator.scenario import read_scenario
from simulator.settings import SettingsError, SimSettings
from simulator.stack import Stack, StackError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avito-harness", description="Avito integration harness and simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="serve the fake Avito and the fake n8n receiver")
    sim.add_argument("--host", help="address to bind (default 127.0.0.1)")
    sim.add_argument("--avito-port", type=int, help="fake Avito port (default 8080; 0 = a free port)")
    sim.add_argument("--n8n-port", type=int, help="fake n8n port (default 5678; 0 = a free port)")
    sim.add_argument("--seed", type=int, help="seed for ids and demo data (default 42)")
    sim.add_argument("--scenario", help="YAML/JSON file of faults, rate limits and delivery behaviour")
    sim.add_argument("--no-demo-data", action="store_true", help="start with an empty account")
    sim.add_argument("--frozen-clock", action="store_true", help="start with the virtual clock frozen")
    return parser


def _settings(args: argparse.Namespace) -> SimSettings:
    overrides: dict[str, Any] = {}
    for name in ("host", "avito_port", "n8n_port", "seed"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.no_demo_data:
        overrides["demo_data"] = False
    if args.frozen_clock:
        overrides["clock"] = "frozen"
    return SimSettings.from_env(os.environ, **overrides)


def _summary(console: Console, stack: Stack) -> None:
    s = stack.settings
    table = Table(title="avito-harness simulator", show_header=True, header_style="bold")
    table.add_column("service")
    table.add_column("URL")
    table.add_column("what to point at it")
    avito, n8n = stack.urls["avito"], stack.urls["n8n"]
    table.add_row("fake Avito", avito, f"AVITO_API_BASE_URL={avito}")
    table.add_row("fake n8n", n8n, f"N8N_WEBHOOK_URL={n8n}/webhook/avito")
    console.print(table)
    creds = Table(title="demo credentials (fake)", show_header=False)
    creds.add_row("AVITO_CLIENT_ID", s.avito_client_id)
    creds.add_row("AVITO_CLIENT_SECRET", s.avito_client_secret)
    creds.add_row("AVITO_USER_ID", str(s.avito_user_id))
    console.print(creds)
    console.print(f"token:   curl -s -X POST {avito}/token -d grant_type=client_credentials "
                  f"-d client_id={s.avito_client_id} -d client_secret={s.avito_client_secret}")
    console.print(f"control: {avito}/_sim/docs   (accounts, 'the customer says', faults, journal, clock)")
    console.print("Ctrl-C stops.")


def run_sim(args: argparse.Namespace, console: Console) -> int:
    try:
        settings = _settings(args)
        scenario = read_scenario(args.scenario) if args.scenario else None
    except (SettingsError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with Stack.start(settings, scenario=scenario) as stack:
            _summary(console, stack)
            while not stop.wait(0.5):
                pass
            console.print("stopping ...")
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    console.print("stopped.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120, soft_wrap=True)
    if args.command == "sim":
        return run_sim(args, console)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
