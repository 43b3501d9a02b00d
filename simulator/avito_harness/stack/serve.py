"""Serve any ASGI app with uvicorn in a background thread on 127.0.0.1 (bounded start and stop)."""

from __future__ import annotations

import gc
import socket
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn

from avito_harness.stack.http_protocol import HotHttpProtocol
from avito_harness.waiting import wait_until

__all__ = [
    "ServeError", "ServedApp", "keep_the_heap_out_of_collections", "serve_in_thread", "wait_until_up", "START_TIMEOUT",
    "STOP_TIMEOUT",
]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class ServeError(RuntimeError):
    """An app could not start or stop in time, or its port was taken."""


@dataclass
class ServedApp:
    name: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(STOP_TIMEOUT)


def serve_in_thread(app: Any, *, name: str, host: str = "127.0.0.1", port: int = 0) -> ServedApp:
    """Start ``app`` and return once it accepts connections (port 0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: no Nagle delay between uvicorn's header and body writes (40 ms each)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    # proxy_headers off: the fakes are reached directly, and uvicorn's X-Forwarded-* layer costs every request;
    # no "server: uvicorn" header: Avito's answers do not name a Python server either; an app's direct answers
    # (the fake Avito's hot calls) skip the ASGI round
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1,
                            http=HotHttpProtocol, proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"serve-{name}", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), START_TIMEOUT, interval=0.01, what=f"{name} to start")
    if not server.started:
        server.should_exit = True
        raise ServeError(f"{name} did not start within {START_TIMEOUT:g} s")
    return ServedApp(name, app, server, thread, f"http://{host}:{bound}")


def keep_the_heap_out_of_collections() -> None:
    """For a fake in its own process (``serve``): what has survived a full collection is not scanned again.

    A fake keeps every message and token it was sent, so under load each full cyclic collection walked all of it:
    30-80 ms pauses every few seconds, which were a load test's p99. Now the heap as started, then what survives
    each full collection, moves to the permanent generation (``gc.freeze``); collections look only at what is new.
    The price: a reference cycle among survivors is never freed, and the fakes' state makes none."""

    def after(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    gc.freeze()  # no collection first: it would cost the cold start ~30 ms for the few kB it frees
    gc.callbacks.append(after)


def wait_until_up(url: str, timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``url`` (real time, bounded) until it answers 200; False when it never did."""
    import httpx  # here, not at the top: a fake's cold start does not load the client it never uses

    def up() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return bool(wait_until(up, timeout, interval=interval, what=f"{url} to answer"))
