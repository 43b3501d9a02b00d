"""The simulated stack in one process: each fake on its own 127.0.0.1 port, one clock.

``with Stack.start(settings) as stack:`` serves the fake Avito, the fake n8n
(receiver and flows) and the fake speech-to-text with uvicorn in background threads (port 0 = a free port),
waits (bounded) until they answer, and stops them on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from avito_harness.fakes.avito.app import create_app as create_avito_app
from avito_harness.fakes.clock import Clock, clock_from
from avito_harness.fakes.control import ControlHooks
from avito_harness.fakes.n8n.app import create_app as create_n8n_app
from avito_harness.fakes.n8n.upstream import RealFlows
from avito_harness.fakes.scenario import apply_common, validate_scenario
from avito_harness.fakes.settings import WEBHOOK_PATH, SimSettings
from avito_harness.fakes.stt.app import create_app as create_stt_app
from avito_harness.judge.transcript import render, transcript
from avito_harness.real.crm import PostgresCrm
from avito_harness.stack.control_clients import AvitoSim, N8nSim, SttSim
from avito_harness.stack.serve import ServedApp, ServeError, serve_in_thread

__all__ = ["Stack", "StackError"]


class StackError(RuntimeError):
    """A service of the stack could not start or stop in time."""


class Stack:
    """The fakes, their URLs, one clock, one reset."""

    def __init__(self, settings: SimSettings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or SimSettings.from_env()
        self.clock = clock or clock_from(self.settings.clock, self.settings.clock_start)
        self.apps: dict[str, FastAPI] = {
            "avito": create_avito_app(self.settings, clock=self.clock),
            "n8n": create_n8n_app(self.settings, clock=self.clock),
            "stt": create_stt_app(self.settings, clock=self.clock),
        }
        self._served: dict[str, ServedApp] = {}
        self.avito: AvitoSim
        self.n8n: N8nSim
        self.stt: SttSim

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
        ports = {"avito": self.settings.avito_port, "n8n": self.settings.n8n_port, "stt": self.settings.stt_port}
        for name, app in self.apps.items():
            try:
                self._served[name] = serve_in_thread(app, name=name, host=self.settings.host, port=ports[name])
            except ServeError as exc:
                raise StackError(str(exc)) from None
        avito_app = self.apps["avito"]
        public = self.settings.public_host or self._served["avito"].url
        avito_app.state.backend.public_url = public
        self.avito = AvitoSim(self._served["avito"].url)
        self.n8n = N8nSim(self._served["n8n"].url)
        self.stt = SttSim(self._served["stt"].url)
        self._wire_flows()

    def _wire_flows(self) -> None:
        """The n8n flows use this stack's speech-to-text (and gateway, once one is attached)."""
        flows = self.apps["n8n"].state.flows
        flows.initial = flows.initial.merged({"stt_url": self._served["stt"].url})
        flows.configure({"stt_url": self._served["stt"].url})

    def attach_gateway(self, url: str, api_key: str) -> None:
        """Point BAT OUT Avito at a gateway; it stays attached across resets."""
        flows = self.apps["n8n"].state.flows
        change = {"gateway_url": url, "gateway_api_key": api_key}
        flows.initial = flows.initial.merged(change)
        flows.configure(change)

    def use_real_n8n(self, crm_url: str, n8n_url: str, executions: Any, *, batch_window: float) -> None:
        """Forward the fake n8n's webhooks to a real n8n whose workflows keep the CRM in ``crm_url`` (Postgres)."""
        app = self.apps["n8n"]
        light = app.state.flows
        config = light.initial.merged({"batch_window": batch_window})
        app.state.flows = RealFlows(config, PostgresCrm(crm_url), n8n_url, executions, self.clock.now)
        light.close()

    def stop(self) -> None:
        for served in self._served.values():
            served.server.should_exit = True
        for served in self._served.values():
            served.stop()
        try:  # an app that never started never ran its shutdown: the CRM's temporary folder goes all the same
            self.apps["n8n"].state.flows.close()
        except Exception:  # noqa: BLE001 - closed already, by its shutdown
            pass
        for client in (getattr(self, "avito", None), getattr(self, "n8n", None), getattr(self, "stt", None)):
            if client is not None:
                client.close()
        self._served.clear()
        self.clock.close()

    # --- shared control ----------------------------------------------------
    @property
    def urls(self) -> dict[str, str]:
        return {name: served.url for name, served in self._served.items()}

    @property
    def n8n_webhook_url(self) -> str:
        """Where a gateway forwards normalized messages (the fake n8n's BAT IN webhook)."""
        return f"{self.urls['n8n']}{WEBHOOK_PATH}"

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

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def story(self) -> str:
        """The conversation so far, hop by hop (see avito_harness.judge.transcript)."""
        return render(transcript(self.apps))

    def unfired_faults(self) -> dict[str, list[dict[str, Any]]]:
        found = {name: [r.to_dict() for r in self.hooks(name).faults.unfired()] for name in self.apps}
        return {k: v for k, v in found.items() if v}
