"""A small keep-alive HTTP/1.1 load generator on asyncio streams (cheaper per request than a full client,
so the numbers are the server's, not the client's). Bounded by count and time."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Result", "load", "percentile"]


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, float | int | str]:
        lat = sorted(self.latencies_ms) or [0.0]
        return {"name": self.name, "concurrency": self.concurrency, "requests": self.requests, "errors": self.errors,
                "rps": round(self.rps, 1), "p50_ms": round(percentile(lat, 50), 3),
                "p95_ms": round(percentile(lat, 95), 3), "p99_ms": round(percentile(lat, 99), 3),
                "mean_ms": round(statistics.fmean(lat), 3)}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def _request(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return parts.hostname or "127.0.0.1", parts.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, make: Callable[[int], bytes], deadline: float, budget: list[int],
                  latencies: list[float], errors: list[int], warmup: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            raw = make(n)
            n += 1
            started = time.perf_counter()
            status = await _one(reader, writer, raw)
            if n > warmup:
                latencies.append((time.perf_counter() - started) * 1000)
                if status >= 400:
                    errors.append(status)
    finally:
        writer.close()


def load(name: str, method: str, url: str, *, concurrency: int, requests: int = 3000, seconds: float = 10.0,
         headers: dict[str, str] | None = None, body: Callable[[int], object] | None = None, warmup: int = 20,
         raw: bytes | None = None) -> Result:
    """``requests`` calls (at most ``seconds``) from ``concurrency`` keep-alive connections; each body is
    ``body(n)`` as JSON, or ``raw`` as it is."""
    base_headers = {"Content-Type": "application/json", **(headers or {})}

    def make(n: int) -> bytes:
        payload = raw if raw is not None else json.dumps(body(n), ensure_ascii=False).encode() if body else b""
        return _request(method, url, base_headers, payload)[2]

    host, port, _ = _request(method, url, base_headers, b"")

    async def main() -> tuple[list[float], list[int], float]:
        latencies: list[float] = []
        errors: list[int] = []
        budget = [requests + warmup * concurrency]
        started = time.perf_counter()
        await asyncio.gather(*(_worker(host, port, make, started + seconds, budget, latencies, errors, warmup)
                               for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started

    latencies, errors, elapsed = asyncio.run(main())
    return Result(name, concurrency, len(latencies), len(errors), elapsed, latencies)
