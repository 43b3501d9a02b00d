"""The commands that serve: ``sim`` (the fakes, our gateway and the demo page until Ctrl-C), ``serve`` (one fake,
what a container runs), ``demo`` (a scripted conversation) and ``up --docker``.

Each command imports what it runs: ``serve avito`` (a container's process) starts without loading the other
fakes, the demo, the real-n8n pipeline or Postgres drivers.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from avito_harness.cli.judging import real_n8n_problem
from avito_harness.fakes.settings import DEMO_API_KEY, SettingsError, SimSettings
from avito_harness.waiting import wait_until

if TYPE_CHECKING:
    from avito_harness.stack.gateway_process import GatewayProcess
    from avito_harness.stack.local import Stack
    from avito_harness.stack.serve import ServedApp

__all__ = ["run_demo", "run_serve", "run_sim", "run_up_command"]


def _settings(args: argparse.Namespace) -> SimSettings:
    overrides: dict[str, Any] = {}
    for name in ("host", "avito_port", "n8n_port", "stt_port", "seed", "batch_window"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.no_demo_data:
        overrides["demo_data"] = False
    if args.frozen_clock:
        overrides["clock"] = "frozen"
    if args.record_only:
        overrides["n8n_mode"] = "record"
    return SimSettings.from_env(os.environ, **overrides)


def _summary(console: Console, stack: Stack, gateway_url: str | None, api_key: str) -> None:
    s = stack.settings
    table = Table(title="avito-harness simulator", show_header=True, header_style="bold")
    table.add_column("service")
    table.add_column("URL")
    table.add_column("what to point at it")
    avito, n8n = stack.urls["avito"], stack.urls["n8n"]
    table.add_row("fake Avito", avito, f"AVITO_API_BASE_URL={avito}")
    table.add_row("fake n8n", n8n, f"N8N_WEBHOOK_URL={stack.n8n_webhook_url}")
    table.add_row("fake speech-to-text", stack.urls["stt"], f"OpenAI-compatible, key {s.stt_api_key}")
    if gateway_url:
        table.add_row("gateway", gateway_url, "X-API-Key: " + api_key)
    console.print(table)
    creds = Table(title="demo credentials (fake)", show_header=False)
    creds.add_row("AVITO_CLIENT_ID", s.avito_client_id)
    creds.add_row("AVITO_CLIENT_SECRET", s.avito_client_secret)
    creds.add_row("AVITO_USER_ID", str(s.avito_user_id))
    console.print(creds)
    console.print(f"token:   curl -s -X POST {avito}/token -d grant_type=client_credentials "
                  f"-d client_id={s.avito_client_id} -d client_secret={s.avito_client_secret}")
    console.print(f"control: {avito}/_sim/docs   (accounts, 'the customer says', faults, journal, clock)")
    console.print(f"your own gateway: AVITO_API_BASE_URL={avito} N8N_WEBHOOK_URL={n8n}/webhook/avito "
                  f"AVITO_CLIENT_ID={s.avito_client_id} AVITO_CLIENT_SECRET={s.avito_client_secret} "
                  f"AVITO_USER_ID={s.avito_user_id} API_KEY=<yours> RATE_LIMIT_REQUESTS=60 RATE_LIMIT_WINDOW=1 "
                  "(short windows keep the real-time checks short); for the acceptance run stop this simulator and run `avito-harness run --gateway-url <gateway> --gateway-api-key <key>` "
                  "(it serves the fakes on the same default ports)")
    console.print(f"CRM:     {n8n}/_sim/flows/appeals   (appeals, batches, messages_history; {n8n}/_sim/docs)")
    if gateway_url:
        chat = stack.avito.account(s.avito_user_id)["chats"]
        if chat:
            console.print(f"try:     curl -s -X POST {avito}/_sim/accounts/{s.avito_user_id}/chats/{chat[0]['id']}/messages "
                          "-H 'Content-Type: application/json' -d '{\"text\": \"Аккумулятор в наличии?\"}'")
    console.print("Ctrl-C stops.")


def _stop_on_signals() -> threading.Event:
    """An event that Ctrl-C (SIGINT) and SIGTERM set: the long-running commands wait on it and stop cleanly."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def run_serve(args: argparse.Namespace, console: Console) -> int:
    """One fake, in the foreground, until SIGTERM / Ctrl-C (a container's process)."""
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides[f"{args.service}_port"] = args.port
    try:
        settings = SimSettings.from_env(os.environ, **overrides)
    except SettingsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    from avito_harness.fakes.clock import clock_from
    from avito_harness.stack.serve import ServeError, keep_the_heap_out_of_collections, serve_in_thread

    clock = clock_from(settings.clock, settings.clock_start)
    app = _factory(args.service)(settings, clock=clock)
    keep_the_heap_out_of_collections()
    port = getattr(settings, f"{args.service}_port")
    stop = _stop_on_signals()
    try:
        served = serve_in_thread(app, name=args.service, host=settings.host, port=port)
    except ServeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    console.print(f"fake {args.service} on {served.url}", highlight=False)
    wait_until(stop.is_set, math.inf, interval=0.5)
    served.stop()
    clock.close()
    return 0


def _factory(service: str) -> Callable[..., Any]:
    if service == "avito":
        from avito_harness.fakes.avito.app import create_app as create_avito_app
        return create_avito_app
    if service == "n8n":
        from avito_harness.fakes.n8n.app import create_app as create_n8n_app
        return create_n8n_app
    from avito_harness.fakes.stt.app import create_app as create_stt_app
    return create_stt_app


def _serve_demo(stack: Stack, gateway_url: str | None, host: str, port: int) -> ServedApp:
    from avito_harness.demo.app import create_app as create_demo_app
    from avito_harness.stack.serve import serve_in_thread

    app = create_demo_app(stack.urls["avito"], stack.urls["n8n"], user_id=stack.settings.avito_user_id,
                          gateway_url=gateway_url)
    return serve_in_thread(app, name="demo", host=host, port=port)


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """The stack with our gateway, a short batching window, the page, and the scripted conversation."""
    from avito_harness.demo.script import play
    from avito_harness.stack.gateway_process import GatewayProcessError
    from avito_harness.stack.local import Stack, StackError
    from avito_harness.stack.serve import ServeError

    settings = SimSettings.from_env(os.environ, avito_port=0, n8n_port=0, stt_port=0, batch_window=args.batch_window,
                                    n8n_mode="flows")
    stop = _stop_on_signals()
    gateway: GatewayProcess | None = None
    ok = True
    try:
        with Stack.start(settings) as stack:
            gateway = _start_gateway(stack, DEMO_API_KEY, 0)
            stack.attach_gateway(gateway.url, gateway.api_key)
            page = _serve_demo(stack, gateway.url, settings.host, args.demo_port)
            try:
                console.print(f"[bold]demo page:[/bold] {page.url}/demo")
                if not args.no_script:
                    ok = play(stack, console, stop=stop.is_set)
                if not args.exit:
                    console.print(f"the page stays up at {page.url}/demo; Ctrl-C stops.")
                    wait_until(stop.is_set, math.inf, interval=0.5)
            finally:
                page.stop()
    except (StackError, GatewayProcessError, ServeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        if gateway is not None:
            gateway.stop()
    return 0 if ok else 1


def _start_gateway(stack: Stack, api_key: str, port: int) -> GatewayProcess:
    """Our gateway as a separate process (port 0: a free one), wired to the fakes and subscribed to the fake
    Avito's webhooks."""
    from avito_harness.stack.gateway_process import GatewayProcess

    gateway = GatewayProcess.wired_to(stack, api_key=api_key, host=stack.settings.host, port=port)
    gateway.start()
    gateway.subscribe()
    return gateway


def run_sim(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.fakes.scenario import read_scenario
    from avito_harness.real.n8n.mapping import MappingError
    from avito_harness.real.n8n.pipeline import start_behind
    from avito_harness.real.n8n.server import N8nServerError
    from avito_harness.real.postgres import PostgresError
    from avito_harness.stack.gateway_process import GatewayProcessError
    from avito_harness.stack.local import Stack, StackError
    from avito_harness.stack.serve import ServeError

    try:
        settings = _settings(args)
        scenario = read_scenario(args.scenario) if args.scenario else None
    except (SettingsError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    problem = real_n8n_problem(args)
    if problem:
        console.print(f"[red]error:[/red] {problem}")
        return 2
    stop = _stop_on_signals()
    gateway: GatewayProcess | None = None
    real: Any = None
    try:
        with Stack.start(settings, scenario=scenario) as stack:
            if args.n8n == "real":
                console.print("starting the real pipeline (Postgres, n8n with BatteryCRM's workflows) ...")
                real = start_behind(stack, gateway_api_key=args.gateway_api_key, batch_window=settings.batch_window,
                                    n8n_url=args.n8n_url, n8n_api_key=args.n8n_api_key, postgres_url=args.postgres_url,
                                    workflows=args.workflows, workflows_map=args.workflows_map)
                console.print(f"real n8n: {real.url} (workflows active; the fake n8n records and forwards to it)  "
                              f"CRM: {real.crm_url}")
            gateway_url = args.gateway_url
            if not args.no_gateway and gateway_url is None:
                gateway = _start_gateway(stack, args.gateway_api_key, args.gateway_port)
                gateway_url = gateway.url
            if gateway_url:
                stack.attach_gateway(gateway_url, args.gateway_api_key)
            page = _serve_demo(stack, gateway_url, settings.host, args.demo_port)
            _summary(console, stack, gateway_url, args.gateway_api_key)
            console.print(f"demo:    {page.url}/demo   (type as the customer, watch the CRM side, break things)")
            try:
                wait_until(stop.is_set, math.inf, interval=0.5)
            finally:
                page.stop()
            console.print("stopping ...")
    except (StackError, GatewayProcessError, ServeError, N8nServerError, PostgresError, MappingError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        if gateway is not None:
            gateway.stop()
        if real is not None:
            real.stop()
    console.print("stopped.")
    return 0


def run_up_command(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.stack.containers import run_up

    return run_up(args, console)
