"""The simulated stack in one process: each fake on its own 127.0.0.1 port, one clock.

``with Stack.start(settings) as stack:`` serves the fake Avito and the fake
n8n receiver with uvicorn in background threads (port 0 = a free port),
waits (bounded) until they answer, and stops them on exit.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from simulator.avito.app import create_app as create_avito_app
from simulator.client import AvitoSim, N8nSim
from simulator.clock import DEFAULT_START, Clock, FakeClock, SystemClock
from simulator.control import ControlHooks
from simulator.n8n.app import create_app as create_n8n_app
from simulator.scenario import apply_common, validate_scenario
from simulator.settings import SimSettings

__all__ = ["Stack", "StackError"]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class StackError(RuntimeError):
    """A service of the stack could not start or stop in time."""


@dataclass
class _Served:
    name: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    url: str


def make_clock(settings: SimSettings) -> Clock:
    if settings.clock == "frozen":
        return FakeClock(settings.clock_start or DEFAULT_START)
    clock = SystemClock()
    if settings.clock_start is not None:
        clock.set_time(settings.clock_start)
    return clock


class Stack:
    """The fakes, their URLs, one clock, one reset."""

    def __init__(self, settings: SimSettings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or SimSettings.from_env()
        self.clock = clock or make_clock(self.settings)
        self.apps: dict[str, FastAPI] = {
            "avito": create_avito_app(self.settings, clock=self.clock),
            "n8n": create_n8n_app(self.settings, clock=self.clock),
        }
        self._served: dict[str, _Served] = {}
        self.avito: AvitoSim
        self.n8n: N8nSim

    # --- lifecycle ---------------------------------------------------------
    @classmethod
    @contextmanager
    def start(
        cls,
        settings: SimSettings | None = None,
        *,
        clock: Clock | None = None,
        scenario: dict[str, Any] | None = None,
    ) -> Iterator[Stack]:
        stack = cls(settings, clock=clock)
        try:
            stack.serve()
            if scenario:
                stack.load_scenario(scenario)
            yield stack
        finally:
            stack.stop()

    def serve(self) -> None:
        ports = {"avito": self.settings.avito_port, "n8n": self.settings.n8n_port}
        for name, app in self.apps.items():
            self._served[name] = self._serve(name, app, ports[name])
        avito_app = self.apps["avito"]
        public = self.settings.public_host or self._served["avito"].url
        avito_app.state.backend.public_url = public
        self.avito = AvitoSim(self._served["avito"].url)
        self.n8n = N8nSim(self._served["n8n"].url)

    def _serve(self, name: str, app: FastAPI, port: int) -> _Served:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, port))
        except OSError as exc:
            sock.close()
            raise StackError(f"{name}: cannot listen on {self.settings.host}:{port}: {exc.strerror}") from None
        bound = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sim-{name}", daemon=True)
        thread.start()
        waiter = threading.Event()
        for _ in range(int(START_TIMEOUT / 0.01)):
            if server.started or not thread.is_alive():
                break
            waiter.wait(0.01)
        if not server.started:
            server.should_exit = True
            raise StackError(f"{name} did not start within {START_TIMEOUT:g} s")
        return _Served(name, app, server, thread, f"http://{self.settings.host}:{bound}")

    def stop(self) -> None:
        for served in self._served.values():
            served.server.should_exit = True
        for served in self._served.values():
            served.thread.join(STOP_TIMEOUT)
        for client in (getattr(self, "avito", None), getattr(self, "n8n", None)):
            if client is not None:
                client.close()
        self._served.clear()
        self.clock.close()

    # --- shared control ----------------------------------------------------
    @property
    def urls(self) -> dict[str, str]:
        return {name: served.url for name, served in self._served.items()}

    def hooks(self, name: str) -> ControlHooks:
        hooks: ControlHooks = self.apps[name].state.control
        return hooks

    def reset(self, seed: int | None = None) -> None:
        """Fresh stores, faults, journals, clock and seed in every fake."""
        self.clock.reset()
        for name in self.apps:
            self.hooks(name).reset(seed)

    def load_scenario(self, doc: dict[str, Any]) -> None:
        validate_scenario(doc)
        apply_common(doc, self.clock, self.reset)
        services_only = {k: v for k, v in doc.items() if k not in ("seed", "clock")}
        for name in self.apps:
            self.hooks(name).load(services_only)

    def export_scenario(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": 1}
        for name in self.apps:
            doc.update(self.hooks(name).export())
        return doc

    def unfired_faults(self) -> dict[str, list[dict[str, Any]]]:
        found = {name: [r.to_dict() for r in self.hooks(name).faults.unfired()] for name in self.apps}
        return {k: v for k, v in found.items() if v}
