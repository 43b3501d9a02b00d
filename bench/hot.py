"""The four calls load tests hammer (token, send text, list chats, list messages): the fake Avito beside a warm
WireMock, and how their cost grows with the fake's state (10 to 100,000 chats, up to a million messages)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from avito_harness.stack.gateway_process import free_port
from bench import peer

__all__ = ["GROWTH", "bench_growth", "bench_peer", "hot_probes", "peer_targets", "print_growth", "print_peer"]

BIN = Path(sys.executable).parent
USER = 100000001
ENV = {"SIM_SEED": "42"}
#: (chats added to the demo account, messages in each): the growth table's rows.
GROWTH = ((10, 10), (1_000, 10), (100_000, 10))
GROWTH_SECONDS, GROWTH_WARMUP = 3.0, 3.0
#: One page size for every row: the default page (100) holds 14 chats in the first row and 100 in the others.
GROWTH_PAGE = "?limit=10"


def serve_command(port: int) -> list[str]:
    return [str(BIN / "avito-harness"), "serve", "avito", "--port", str(port)]


FORM = b"grant_type=client_credentials&client_id=sim-client-id&client_secret=sim-client-secret"


def _access(avito: str) -> dict[str, str]:
    answer = httpx.post(f"{avito}/token", content=FORM, headers={"Content-Type": "application/x-www-form-urlencoded"})
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def renewer(avito: str) -> peer.Before:
    """A probe that carries a token with a fresh one of the same account (the others as they are)."""

    def renew(probe: peer.Probe) -> peer.Probe:
        if "Authorization" not in probe.headers:
            return probe
        return dataclasses.replace(probe, headers={**probe.headers, **_access(avito)})

    return renew


def hot_probes(avito: str, *, page: str = "") -> list[peer.Probe]:
    """The four calls as a client makes them: a token of the demo account, its newest chats (``page``: a query
    for both lists, as ``?limit=10``)."""
    auth = _access(avito)
    chats = httpx.get(f"{avito}/messenger/v2/accounts/{USER}/chats", headers=auth).json()["chats"]
    sent_to, read_from = chats[0]["id"], chats[1]["id"]  # sends never grow the chat that is read
    return [
        peer.Probe("send text", "POST", f"/messenger/v1/accounts/{USER}/chats/{sent_to}/messages",
                   "/messenger/v1/accounts/[0-9]+/chats/[^/]+/messages",
                   json.dumps({"type": "text", "message": {"text": "bench"}}).encode(),
                   {**auth, "Content-Type": "application/json"}),
        peer.Probe("list chats", "GET", f"/messenger/v2/accounts/{USER}/chats{page}",
                   "/messenger/v2/accounts/[0-9]+/chats", headers=auth),
        peer.Probe("list messages", "GET", f"/messenger/v3/accounts/{USER}/chats/{read_from}/messages/{page}",
                   "/messenger/v3/accounts/[0-9]+/chats/[^/]+/messages/", headers=auth),
        peer.Probe("token", "POST", "/token", "/token", FORM, {"Content-Type": "application/x-www-form-urlencoded"}),
    ]


def bench_peer() -> dict[str, Any]:
    """Our fake Avito (one process, journal on, real auth and state) beside WireMock answering its bytes."""
    port = free_port()
    avito = f"http://127.0.0.1:{port}"
    with peer.server(serve_command(port), f"{avito}/_sim/health", ENV) as (pid, ready):
        side = peer.compare(avito, pid, ready, hot_probes(avito), renew=renewer(avito))
    side["ours_ready_s"] = peer.median_start(serve_command, "/_sim/health", ENV, first=ready)
    return side


def _cell(row: dict[str, Any]) -> str:
    low, high = row.get("rps_spread", [row["rps"]] * 2)
    errors = f" {row['errors']:,} ERRORS" if row.get("errors") else ""
    return f"{row['rps']:,.0f} [{low:,.0f}-{high:,.0f}] ({row['p99_ms']:.1f}){errors}"


def print_peer(side: dict[str, Any], console: Console) -> None:
    theirs = side["wiremock"]["results"] if isinstance(side["wiremock"], dict) else {}
    table = Table(title=f"fake Avito beside a warm WireMock ({side['generator']}, {side['connections']} connections, "
                        f"median of {side['rounds']} alternating {side['seconds']:g} s rounds after a warm-up "
                        f"of at least {side['min_warmup_seconds']:g} s)")
    for column in ("request", "bytes", "WireMock req/s [spread] (p99 ms)", "fake Avito req/s [spread] (p99 ms)",
                   "ratio (rounds)"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for name, ours in side["ours"].items():
        ratio = (f"{side['ratio'][name]:.2f}x ({', '.join(f'{r:.2f}' for r in side['ratios'][name])})"
                 if name in theirs else "-")
        table.add_row(name, str(side["response_bytes"][name]), _cell(theirs[name]) if name in theirs else "-",
                      _cell(ours), ratio)
    console.print(table)
    for who, key in (("fake Avito", "ours_warmup"), ("WireMock", "wiremock_warmup")):
        for name, curve in side.get(key, {}).items():
            console.print(f"  warm-up {who} {name} (req/s per {peer.SLICE:g} s): "
                          + " ".join(f"{v:,.0f}" for v in curve))
    console.print(f"  fake Avito: RSS {side['ours_rss_mb']} MB, healthy after {side['ours_ready_s']} s")
    if theirs:
        console.print(f"  WireMock {side['wiremock']['version']}: RSS {side['wiremock']['rss_mb']} MB, "
                      f"healthy after {side['wiremock']['ready_s']} s")
    else:
        console.print(f"  WireMock {side['wiremock']}; ours alone above")


def peer_targets(side: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    targets: dict[str, tuple[Any, bool]] = {}
    if isinstance(side["wiremock"], dict):
        for name, ratio in side["ratio"].items():
            ours, theirs = side["ours"][name]["p99_ms"], side["wiremock"]["results"][name]["p99_ms"]
            targets[f"fake Avito {name} >= 1.2x a warm WireMock's req/s (median)"] = (ratio, ratio >= 1.2)
            targets[f"fake Avito {name} p99 <= WireMock's"] = (f"{ours:.1f} vs {theirs:.1f} ms", ours <= theirs)
    runs = [run for rnd in side.get("round_runs", []) for who in rnd.values() for run in who.values()]
    errors = sum(run["errors"] for run in runs) + sum(row.get("errors", 0) for row in side["ours"].values())
    targets["no errors (non-2xx, timeouts) in any measured run"] = (errors, errors == 0)
    targets["fake Avito RSS <= 150 MB"] = (side["ours_rss_mb"], side["ours_rss_mb"] <= 150)
    targets["serve avito healthy <= 0.5 s"] = (side["ours_ready_s"], side["ours_ready_s"] <= 0.5)
    return targets


def bench_growth() -> list[dict[str, Any]]:
    """The four calls against a fake holding more and more chats and messages (a fresh process per row)."""
    rows = []
    for chats, each in GROWTH:
        port = free_port()
        avito = f"http://127.0.0.1:{port}"
        with peer.server(serve_command(port), f"{avito}/_sim/health", ENV) as (pid, _):
            made = httpx.post(f"{avito}/_sim/accounts/{USER}/volume", json={"chats": chats, "messages_per_chat": each},
                              timeout=600).json()
            row: dict[str, Any] = {"chats": made["chats"], "messages": made["messages"]}
            renew = renewer(avito)
            for probe in hot_probes(avito, page=GROWTH_PAGE):
                peer.run(avito, probe, GROWTH_WARMUP, renew)
                row[probe.name] = peer.run(avito, probe, GROWTH_SECONDS, renew)
            row["rss_mb"] = peer.rss_mb(pid)
        rows.append(row)
    return rows


def print_growth(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title=f"the four calls as the fake's state grows ({peer.CONNECTIONS} connections, "
                        f"{GROWTH_SECONDS:g} s each, lists {GROWTH_PAGE}; req/s, p50 / p99 ms)")
    names = [k for k in rows[0] if isinstance(rows[0][k], dict)] if rows else []
    for column in ("chats", "messages", *names, "RSS MB"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row['chats']:,}", f"{row['messages']:,}",
                      *(f"{row[n]['rps']:,.0f}  {row[n]['p50_ms']:.1f} / {row[n]['p99_ms']:.1f}"
                        + (f" {row[n]['errors']} ERRORS" if row[n]["errors"] else "") for n in names),
                      str(row["rss_mb"]))
    console.print(table)
