"""The peer beside our fake Avito: WireMock (the npm package ``wiremock``, which ships the standalone jar) serving
stubs with the very bytes our fake answered, both loaded by the same generator.

The generator is wrk when it is on PATH (keep-alive, 16 connections, 10 s runs), else the bench's own asyncio
client (said in the output: it saturates sooner than wrk, so ratios against a fast peer come out kinder).
Without Java, WireMock is not run and ours are printed alone.

Fair to a JVM: both servers stay up for the whole comparison; each call is first warmed on each server in
slices until its rate stops rising (at least ``MIN_WARMUP``: WireMock's JIT is still compiling before that),
and the slices' rates are kept as the warm-up curve; then ``ROUNDS`` rounds alternate which server goes first,
and the ratio reported is the median of the rounds' ratios, with their spread. WireMock keeps every request in
its journal (its default, which we keep); the journal is cleared before each run so a long bench measures
serving, not a heap that grows for minutes (ours keeps a bounded journal).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from avito_harness.real.n8n.install import InstallError, NpmInstall, cache_dir
from avito_harness.stack.gateway_process import free_port
from bench.loadgen import load, percentile

WIREMOCK_VERSION = "3.13.2"
CONNECTIONS, SECONDS, ROUNDS = 16, 10.0, 3
#: Warm-up in slices until the rate stops rising (within RISE of the best slice so far), at least MIN_WARMUP s.
MIN_WARMUP, MAX_WARMUP, SLICE, RISE = 15.0, 60.0, 2.0, 1.05


@dataclass(frozen=True)
class Probe:
    """One request of the comparison: what is sent, and how WireMock recognises it."""

    name: str
    method: str
    path: str
    url_pattern: str  # WireMock's urlPathPattern
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def wiremock_install() -> NpmInstall:
    return NpmInstall(cache_dir() / f"wiremock-{WIREMOCK_VERSION}", "wiremock", WIREMOCK_VERSION)


def wiremock_jar() -> Path:
    """The standalone jar, installed from npm into the cache once. Raises InstallError saying why not."""
    target = wiremock_install()
    target.ensure()
    jars = sorted((target.package_dir / "build").glob("wiremock-standalone-*.jar"))
    if not jars:
        raise InstallError(f"the wiremock package in {target.root} ships no standalone jar")
    return jars[-1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@contextmanager
def server(cmd: list[str], health: str, env: dict[str, str] | None = None) -> Iterator[tuple[int, float]]:
    """A server process; yields its pid and its start-to-healthy seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tempfile.mkdtemp(prefix="avito-bench-peer-"))
    waiter = threading.Event()
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{Path(cmd[0]).name} exited before answering {health}")
            if _answers_200(health):
                break
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"{health} did not answer within 60 s")
            waiter.wait(0.01)
        yield proc.pid, time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            print(f"{Path(cmd[0]).name} did not stop within 10 s of SIGTERM: killed", file=sys.stderr)
            proc.kill()
            proc.wait(10)


def _answers_200(url: str) -> bool:
    """One plain GET (http.client: an httpx call builds a TLS context first, ~20 ms that would count as the
    server's start-up time)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def median_start(command: Callable[[int], list[str]], health_path: str, env: dict[str, str], *, first: float,
                 runs: int = 3) -> float:
    """Start-to-healthy as the median of ``first`` (the measured server's own start) and more fresh starts: one
    start alone swings by a tenth of a second with whatever the machine did just before."""
    starts = [first]
    for _ in range(runs - 1):
        port = free_port()
        with server(command(port), f"http://127.0.0.1:{port}{health_path}", env) as (_, ready):
            starts.append(ready)
    return round(statistics.median(starts), 3)


WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
wrk.headers = {headers}
done = function(summary, latency, requests)
  io.write(string.format('{{"requests": %d, "seconds": %f, "errors": %d, "p50_ms": %f, "p99_ms": %f}}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _lua(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # a JSON string is a valid Lua string literal for these ASCII bodies


def wrk(url: str, probe: Probe, seconds: float) -> dict[str, Any]:
    script = Path(tempfile.mkdtemp(prefix="avito-bench-wrk-")) / "probe.lua"
    script.write_text(WRK_SCRIPT.format(method=_lua(probe.method), body=_lua(probe.body.decode()),
                                        headers=_lua(probe.headers)))
    done = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
                           url + probe.path], capture_output=True, text=True, timeout=seconds + 60, check=True)
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    row["rps"] = round(row["requests"] / row["seconds"], 1) if row["seconds"] else 0.0
    return row


def own_generator(url: str, probe: Probe, seconds: float) -> dict[str, Any]:
    result = load(probe.name, probe.method, url + probe.path, concurrency=CONNECTIONS, requests=10**7,
                  seconds=seconds, headers=probe.headers, warmup=0, raw=probe.body)
    lat = sorted(result.latencies_ms)
    return {"requests": result.requests, "seconds": result.seconds, "errors": result.errors, "rps": round(result.rps, 1),
            "p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3)}


Before = Callable[[Probe], Probe]  # run before each load: the probe to send (a fresh token, a cleared journal)


def run(url: str, probe: Probe, seconds: float, before: Before | None = None) -> dict[str, Any]:
    if before is not None:
        probe = before(probe)
    return (wrk if shutil.which("wrk") else own_generator)(url, probe, seconds)


def warm(url: str, probe: Probe, before: Before | None = None) -> list[float]:
    """Load ``probe`` in slices until its rate stops rising (and at least MIN_WARMUP s); the slices' req/s."""
    curve: list[float] = []
    while True:
        curve.append(run(url, probe, SLICE, before)["rps"])
        spent = len(curve) * SLICE
        settled = len(curve) >= 3 and curve[-1] <= RISE * max(curve[:-1]) and curve[-2] <= RISE * max(curve[:-2])
        if spent >= MAX_WARMUP or (spent >= MIN_WARMUP and settled):
            return curve


def stub(probe: Probe, status: int, body: bytes, content_type: str) -> dict[str, Any]:
    return {"request": {"method": probe.method, "urlPathPattern": probe.url_pattern},
            "response": {"status": status, "body": body.decode(), "headers": {"Content-Type": content_type}}}


def capture(url: str, probe: Probe) -> tuple[int, bytes, str]:
    """What our fake answers to the probe: WireMock's stub answers exactly these bytes."""
    answer = httpx.request(probe.method, url + probe.path, content=probe.body or None, headers=probe.headers)
    if answer.status_code >= 400:
        raise RuntimeError(f"our fake refused the probe {probe.name}: {answer.status_code} {answer.text[:200]}")
    return answer.status_code, answer.content, answer.headers.get("content-type", "application/json")


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "the bench's asyncio client (wrk not on PATH)"


def compare(fake_url: str, fake_pid: int, fake_ready_s: float, probes: list[Probe],
            renew: Before | None = None) -> dict[str, Any]:
    """Each probe warmed on both servers, then ROUNDS alternating rounds (see the module's docstring).

    ``renew`` gives our fake's probe a fresh token before each load: the token calls issue tens of thousands,
    and an account keeps its newest 10,000 live (an older one answers 401, as wrk would count)."""
    captured = {p.name: capture(fake_url, p) for p in probes}
    out: dict[str, Any] = {"generator": generator_name(), "connections": CONNECTIONS, "seconds": SECONDS,
                           "rounds": ROUNDS, "min_warmup_seconds": MIN_WARMUP, "response_bytes": {
                               name: len(body) for name, (_, body, _) in captured.items()}}
    if shutil.which("java") is None:
        out["wiremock"] = "not run: no Java on PATH (WireMock is a Java program)"
    else:
        try:
            jar: Path | None = wiremock_jar()
        except InstallError as exc:
            out["wiremock"], jar = f"not run: {exc}", None
    if "wiremock" in out:
        out["ours_warmup"] = {p.name: warm(fake_url, p, renew) for p in probes}
        out["ours"] = {p.name: run(fake_url, p, SECONDS, renew) for p in probes}
        out.update(ours_rss_mb=rss_mb(fake_pid), ours_ready_s=round(fake_ready_s, 3))
        return out
    assert jar is not None
    port = free_port()
    with server(["java", "-jar", str(jar), "--port", str(port), "--bind-address", "127.0.0.1", "--disable-banner"],
                f"http://127.0.0.1:{port}/__admin/health") as (pid, ready):
        peer = f"http://127.0.0.1:{port}"
        for probe in probes:
            httpx.post(f"{peer}/__admin/mappings", json=stub(probe, *captured[probe.name])).raise_for_status()

        def forget(probe: Probe) -> Probe:
            httpx.delete(f"{peer}/__admin/requests").raise_for_status()
            return probe

        sides: dict[str, tuple[str, Before | None]] = {"ours": (fake_url, renew), "wiremock": (peer, forget)}
        curves = {side: {p.name: warm(url, p, before) for p in probes} for side, (url, before) in sides.items()}
        rounds: list[dict[str, dict[str, Any]]] = []
        for n in range(ROUNDS):
            order = ["ours", "wiremock"] if n % 2 == 0 else ["wiremock", "ours"]
            this: dict[str, dict[str, Any]] = {"ours": {}, "wiremock": {}}
            for probe in probes:
                for side in order:
                    url, before = sides[side]
                    this[side][probe.name] = run(url, probe, SECONDS, before)
            rounds.append(this)
        out["wiremock"] = {"version": WIREMOCK_VERSION, "rss_mb": rss_mb(pid), "ready_s": round(ready, 3)}
    out.update(ours_rss_mb=rss_mb(fake_pid), ours_ready_s=round(fake_ready_s, 3), round_runs=rounds,
               ours_warmup=curves["ours"], wiremock_warmup=curves["wiremock"])
    out["ours"] = {p.name: _median_run([r["ours"][p.name] for r in rounds]) for p in probes}
    out["wiremock"]["results"] = {p.name: _median_run([r["wiremock"][p.name] for r in rounds]) for p in probes}
    out["ratios"] = {p.name: [round(r["ours"][p.name]["rps"] / r["wiremock"][p.name]["rps"], 2)
                              if r["wiremock"][p.name]["rps"] else 0.0 for r in rounds] for p in probes}
    out["ratio"] = {name: round(statistics.median(values), 2) for name, values in out["ratios"].items()}
    return out


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' medians of req/s and p99 (each on its own), and their spread."""
    rps, p99 = [r["rps"] for r in runs], [r["p99_ms"] for r in runs]
    return {"rps": round(statistics.median(rps), 1), "p99_ms": round(statistics.median(p99), 3),
            "rps_spread": [min(rps), max(rps)], "p99_spread": [min(p99), max(p99)],
            "errors": sum(r["errors"] for r in runs)}
