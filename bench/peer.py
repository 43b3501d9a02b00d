"""The peer beside our fake Avito: WireMock (the npm package ``wiremock``, which ships the standalone jar) serving
stubs with the very bytes our fake answered, both loaded by the same generator.

The generator is wrk when it is on PATH (keep-alive, 16 connections, 10 s after a 2 s warm-up: the issue's
method), else the bench's own asyncio client (said in the output: it saturates sooner than wrk, so ratios
against a fast peer come out kinder). Without Java, WireMock is not run and ours are printed alone.
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
CONNECTIONS, SECONDS, WARMUP = 16, 10.0, 2.0


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
    done = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script),
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


def measure(url: str, probe: Probe) -> dict[str, Any]:
    """A warm-up, then the measured run, with whichever generator is here."""
    run = wrk if shutil.which("wrk") else own_generator
    run(url, probe, WARMUP)
    return run(url, probe, SECONDS)


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


def compare(fake_url: str, fake_pid: int, fake_ready_s: float, probes: list[Probe]) -> dict[str, Any]:
    """Each probe against our fake, then (Java present) against WireMock stubbed with our fake's bytes."""
    captured = {p.name: capture(fake_url, p) for p in probes}
    ours = {p.name: measure(fake_url, p) for p in probes}
    out: dict[str, Any] = {"generator": generator_name(), "connections": CONNECTIONS, "seconds": SECONDS,
                           "warmup_seconds": WARMUP, "ours": ours, "ours_rss_mb": rss_mb(fake_pid),
                           "ours_ready_s": round(fake_ready_s, 3), "response_bytes": {
                               name: len(body) for name, (_, body, _) in captured.items()}}
    if shutil.which("java") is None:
        out["wiremock"] = "not run: no Java on PATH (WireMock is a Java program)"
        return out
    try:
        jar = wiremock_jar()
    except InstallError as exc:
        out["wiremock"] = f"not run: {exc}"
        return out
    port = free_port()
    with server(["java", "-jar", str(jar), "--port", str(port), "--bind-address", "127.0.0.1", "--disable-banner"],
                f"http://127.0.0.1:{port}/__admin/health") as (pid, ready):
        peer = f"http://127.0.0.1:{port}"
        for probe in probes:
            httpx.post(f"{peer}/__admin/mappings", json=stub(probe, *captured[probe.name])).raise_for_status()
        theirs = {p.name: measure(peer, p) for p in probes}
        out.update({"wiremock": {"version": WIREMOCK_VERSION, "results": theirs, "rss_mb": rss_mb(pid),
                                 "ready_s": round(ready, 3)}})
    out["ratio"] = {name: round(ours[name]["rps"] / theirs[name]["rps"], 2) if theirs[name]["rps"] else None
                    for name in ours}
    return out
