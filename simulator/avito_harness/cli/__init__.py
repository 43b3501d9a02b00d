"""``avito-harness``: the command line.

``avito-harness sim`` serves the fake Avito, the fake n8n (with the
customer's workflows) and the fake speech-to-text on 127.0.0.1 with demo
data, starts our gateway as a separate process wired to them (or uses
``--gateway-url``), prints URLs and demo credentials, and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from avito_harness.fakes.settings import SettingsError, SimSettings
from avito_harness.judge.verdict import Category

if TYPE_CHECKING:
    from avito_harness.stack.gateway_process import GatewayProcess
    from avito_harness.stack.local import Stack
    from avito_harness.stack.serve import ServedApp

# Each command imports what it runs: `serve avito` (a container's process) starts without loading the other
# fakes, the demo, the real-n8n pipeline or Postgres drivers.

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avito-harness", description="Avito integration harness and simulator")
    parser.add_argument("--version", action="version", version=f"avito-harness {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write CI files that run the acceptance run in your repository")
    init.add_argument("--ci", choices=["github", "gitlab"], required=True, help="the CI service")
    init.add_argument("--gateway-cmd", default="my-gateway --port {port}",
                      help="how CI starts your gateway ({port} is replaced; the deployment's variables are set)")
    init.add_argument("--features", help="a directory of your own .feature files to run too")
    init.add_argument("--docker", action="store_true", help="also write docker-compose.test.yml (gateway as an image)")
    init.add_argument("--gateway-image", default="my-gateway:latest", help="your gateway's image (with --docker)")
    init.add_argument("--dir", default=".", help="the repository to write into (default: here)")
    init.add_argument("--install", help="what CI pip-installs (default: this version, avito-harness==X.Y.Z)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    n8n = sub.add_parser("n8n", help="the real n8n (npm, pinned) for testing real workflows")
    n8n_sub = n8n.add_subparsers(dest="n8n_command", required=True)
    n8n_install = n8n_sub.add_parser("install", help="install n8n 2.8.4 into the cache once (~4.5 min, ~2.3 GB; "
                                                     "Node.js >= 20.19)")
    n8n_install.add_argument("--if-node", action="store_true",
                             help="without a usable Node.js, say so and succeed (make test: the real-n8n tests skip)")
    steps = sub.add_parser("steps", help="every step phrase for your own .feature files, with an example each")
    steps.add_argument("--markdown", action="store_true", help="print a Markdown table")
    sim = sub.add_parser("sim", help="serve the fake Avito and the fake n8n receiver")
    sim.add_argument("--host", help="address to bind (default 127.0.0.1)")
    sim.add_argument("--avito-port", type=int, help="fake Avito port (default 8080; 0 = a free port)")
    sim.add_argument("--n8n-port", type=int, help="fake n8n port (default 5678; 0 = a free port)")
    sim.add_argument("--seed", type=int, help="seed for ids and demo data (default 42)")
    sim.add_argument("--scenario", help="YAML/JSON file of faults, rate limits and delivery behaviour")
    sim.add_argument("--no-demo-data", action="store_true", help="start with an empty account")
    sim.add_argument("--frozen-clock", action="store_true", help="start with the virtual clock frozen")
    sim.add_argument("--stt-port", type=int, help="fake speech-to-text port (default 8090; 0 = a free port)")
    sim.add_argument("--batch-window", type=float, help="seconds the n8n batcher collects a client's messages (30)")
    sim.add_argument("--record-only", action="store_true", help="fake n8n only records (no workflows)")
    gw = sim.add_mutually_exclusive_group()
    gw.add_argument("--no-gateway", action="store_true", help="do not start the embedded gateway")
    gw.add_argument("--gateway-url", help="use this running gateway instead of starting ours")
    sim.add_argument("--gateway-api-key", default="test-api-key", help="X-API-Key of the gateway (test-api-key)")
    sim.add_argument("--gateway-port", type=int, default=8765, help="port of the embedded gateway (8765; 0 = free)")
    sim.add_argument("--demo-port", type=int, default=8088, help="port of the demo page (8088; 0 = free)")
    _real_n8n_options(sim)
    demo = sub.add_parser("demo", help="play a scripted conversation in the terminal; the demo page stays up")
    demo.add_argument("--demo-port", type=int, default=8088, help="port of the demo page (8088; 0 = free)")
    demo.add_argument("--no-script", action="store_true", help="only serve the page (until Ctrl-C)")
    demo.add_argument("--exit", action="store_true", help="stop after the script instead of keeping the page up")
    demo.add_argument("--batch-window", type=float, default=2.0, help="n8n batching window in seconds (2 for the demo)")
    serve = sub.add_parser("serve", help="serve one fake on its own (what each container runs)")
    serve.add_argument("service", choices=["avito", "n8n", "stt"])
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, help="port (default: the service's SIM_*_PORT)")
    up = sub.add_parser("up", help="the stack as containers (docker)")
    up.add_argument("--docker", action="store_true", required=True, help="use the local Docker engine")
    up.add_argument("--down", action="store_true", help="stop and remove the containers instead")
    up.add_argument("--gateway-image", default=None, help="another gateway image (default: ours)")
    run = sub.add_parser("run", help="the five-stage acceptance run (make run)",
                         description="Exit codes: 0 everything selected was judged and passed; 1 defects found; "
                                     "2 the harness could not judge (options, a feature file, the gateway or the "
                                     "pipeline not starting, a scenario that did not finish), with the reason.")
    run.add_argument("--stage", action="append", default=[], choices=["1", "2", "3", "4", "5", "errors"],
                     help="run only this stage (repeatable; errors = the Avito errors)")
    run.add_argument("--gateway-url", help="an already running gateway configured with the fakes (see `sim`)")
    run.add_argument("--gateway-api-key", help="its X-API-Key (default test-api-key)")
    run.add_argument("--gateway-cmd", help="start the gateway with this command ({port} is replaced)")
    run.add_argument("--stack-url", help="fakes running elsewhere: avito=URL,n8n=URL,stt=URL (containers)")
    run.add_argument("--scenario", dest="scenarios", action="append", default=[], metavar="NAME",
                     help="only the scenario with this name, as the report prints it (or a part of it; repeatable)")
    run.add_argument("--features", action="append", default=[], metavar="DIR",
                     help="also run your .feature files in DIR, written in our step vocabulary (repeatable; "
                          "`avito-harness steps` lists the phrases)")
    run.add_argument("--only-features", action="store_true", help="run only the --features directories, not ours")
    _real_n8n_options(run)
    run.add_argument("--request-timeout", type=float, default=10.0, metavar="S",
                     help="seconds the gateway has for a whole answer (10)")
    run.add_argument("--start-timeout", type=float, default=30.0, metavar="S",
                     help="seconds a gateway started by --gateway-cmd has to answer GET /health (30)")
    run.add_argument("--scenario-timeout", type=float, default=300.0, metavar="S",
                     help="seconds one scenario may take; past it, it is not judged (300)")
    run.add_argument("--run-timeout", type=float, default=3600.0, metavar="S",
                     help="seconds the whole run may take; the rest is not judged (3600)")
    run.add_argument("--max-answer-bytes", type=int, default=10 * 1024 * 1024, metavar="N",
                     help="the largest answer of the gateway the harness reads (10 MiB)")
    run.add_argument("--junit", help="write JUnit XML to this file")
    run.add_argument("--json", dest="json_report", help="write the results (with transcripts) as JSON")
    run.add_argument("--html", dest="html_report", help="write an HTML report")
    contract = sub.add_parser("contract", help="check a running gateway against contracts/gateway.openapi.yaml",
                              description="Exit codes: 0 every operation judged and passed; 1 violations found; 2 the "
                                          "harness could not judge (nothing answers, the key is refused, ...).")
    contract.add_argument("--gateway-url", required=True, help="base URL of the gateway to check")
    contract.add_argument("--api-key", required=True, help="its X-API-Key")
    contract.add_argument("--allow-writes", action="store_true", help="also run sends (only to --chat-id chats)")
    contract.add_argument("--chat-id", action="append", default=[], help="a chat sends may go to (repeatable)")
    contract.add_argument("--max-examples", type=int, default=25, help="generated requests per operation (25)")
    contract.add_argument("--profile", choices=["seed", "full"], default="seed",
                          help="seed (default): SPEC's endpoints and fields; full: also ours (avito-harness's gateway)")
    contract.add_argument("--junit", help="write JUnit XML to this file")
    contract.add_argument("--json", dest="json_report", help="write the results, a defect code per violation, as JSON")
    contract.add_argument("--contract", help="another contract file (default: contracts/gateway.openapi.yaml)")
    contract.add_argument("--timeout", type=float, default=10.0, metavar="S",
                          help="seconds the gateway has for a whole answer (10)")
    return parser


def run_contract(args: argparse.Namespace, console: Console) -> int:
    # schemathesis and hypothesis load only for this command: `serve` and `sim` start faster without them
    from avito_harness.judge.contract.report import print_report, write_json, write_junit
    from avito_harness.judge.contract.runner import ContractOptions, ContractRun, check_gateway
    from avito_harness.judge.verdict import CannotJudge, ExitCode, Verdict

    target = args.gateway_url.rstrip("/")
    run: ContractRun | None = None
    try:
        if args.allow_writes and not args.chat_id:
            raise CannotJudge(Category.USAGE, "--allow-writes needs at least one --chat-id: a deployed gateway talks "
                                              "to real customers")
        if not args.timeout > 0 or args.max_examples < 1:
            raise CannotJudge(Category.USAGE, "--timeout must be more than 0 seconds and --max-examples at least 1")
        options = ContractOptions(
            gateway_url=target, api_key=args.api_key, allow_writes=args.allow_writes, chat_ids=tuple(args.chat_id),
            max_examples=args.max_examples, timeout=args.timeout,
            contract=Path(args.contract) if args.contract else None, profile=args.profile,
        )
        run = check_gateway(options)
        verdict = run.verdict()
        print_report(console, run, target)
    except CannotJudge as exc:
        verdict = Verdict(ExitCode.CANNOT_JUDGE, "not_judged", exc.category, exc.reason)
        console.print(verdict.line(), markup=False, highlight=False)
    if args.junit:
        write_junit(Path(args.junit), run, target, verdict)
    if args.json_report:
        write_json(Path(args.json_report), run, target, args.profile, verdict)
    return int(verdict.code)


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
    table.add_row("fake n8n", n8n, f"N8N_WEBHOOK_URL={n8n}/webhook/avito")
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
    while not stop.wait(0.5):
        pass
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
            gateway = _start_gateway(stack, "test-api-key", 0)
            stack.attach_gateway(gateway.url, gateway.api_key)
            page = _serve_demo(stack, gateway.url, settings.host, args.demo_port)
            try:
                console.print(f"[bold]demo page:[/bold] {page.url}/demo")
                if not args.no_script:
                    ok = play(stack, console, stop=stop.is_set)
                if not args.exit:
                    console.print(f"the page stays up at {page.url}/demo; Ctrl-C stops.")
                    while not stop.wait(0.5):
                        pass
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
    from avito_harness.stack.gateway_process import GatewayProcess, free_port

    s = stack.settings
    gateway = GatewayProcess(
        avito_url=stack.urls["avito"], n8n_webhook_url=f"{stack.urls['n8n']}/webhook/avito",
        client_id=s.avito_client_id, client_secret=s.avito_client_secret, user_id=s.avito_user_id,
        api_key=api_key, host=s.host, port=port or free_port(s.host),
    )
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
    problem = _real_n8n_problem(args)
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
                while not stop.wait(0.5):
                    pass
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("avito-harness")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown (not installed)"


def run_init(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.cli.ci_init import CiOptions, write_ci_files

    options = CiOptions(args.ci, args.gateway_cmd, args.features, args.docker, args.gateway_image, args.force,
                        args.install)
    try:
        written = write_ci_files(options, Path(args.dir))
    except FileExistsError as exc:
        console.print(f"[red]error:[/red] already there: {exc} (--force overwrites)")
        return 2
    for path in written:
        console.print(f"wrote {path}")
    if args.gateway_cmd == "my-gateway --port {port}":
        console.print("[yellow]edit the gateway command[/yellow] (or pass --gateway-cmd): it starts your gateway in CI")
    return 0


def run_n8n(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.real.n8n.install import MIN_NODE, InstallError, N8nInstall, node_version

    target = N8nInstall.default()
    node = node_version()
    if args.if_node and target.installed_version() != target.version and (node is None or node < MIN_NODE):
        console.print(f"n8n {target.version} not installed: it needs Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} (here: "
                      f"{'none' if node is None else '.'.join(map(str, node))}); the real-n8n tests will be skipped")
        return 0
    console.print(f"n8n {target.version} in {target.root} ...")
    try:
        installed = target.ensure()
    except InstallError as exc:
        console.print("[red]error:[/red] ", end="")
        console.print(str(exc), markup=False)
        return 1
    console.print(f"{'installed' if installed else 'already installed'}: {target.executable}")
    return 0


def run_steps(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.judge.steps.phrases import step_phrases

    phrases = step_phrases()
    if args.markdown:
        print("| step | example | parameters |\n|---|---|---|")
        for p in phrases:
            params = "<br>".join(f"`{name}`: {what}" for name, what in p.parameters)
            print(f"| {p.kind.capitalize()} {p.pattern} | `{p.example}` | {params} |")
        return 0
    table = Table(title=f"{len(phrases)} step phrases ({{name}}: a word or quoted text, {{n:d}}: a number)",
                  header_style="bold")
    table.add_column("step")
    table.add_column("example")
    table.add_column("parameters")
    for p in phrases:
        table.add_row(f"{p.kind.capitalize()} {p.pattern}", p.example,
                      "\n".join(f"{name}: {what}" for name, what in p.parameters))
    console.print(table)
    return 0


def run_up_command(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.stack.containers import run_up

    return run_up(args, console)


def _real_n8n_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n8n", choices=("light", "real"), default="light",
                        help="light: BatteryCRM's workflows played in Python (default); real: n8n itself runs them over "
                             "a real Postgres (run `avito-harness n8n install` once)")
    parser.add_argument("--n8n-url", help="with --n8n real: a running n8n with the workflows active, instead of ours")
    parser.add_argument("--n8n-api-key", help="its public API key (to judge by its executions)")
    parser.add_argument("--postgres-url", help="with --n8n real: the CRM's Postgres (default: the harness starts one)")
    parser.add_argument("--workflows", metavar="DIR", help="with --n8n real: your exported workflow JSON instead of ours")
    parser.add_argument("--workflows-map", metavar="FILE",
                        help="YAML: your workflows' credential names and hosts -> the harness's (see the README)")


def _real_n8n_problem(args: argparse.Namespace) -> str | None:
    """Options that cannot work together, named before anything starts."""
    real_only = [f"--{n.replace('_', '-')}" for n in ("n8n_url", "n8n_api_key", "postgres_url", "workflows",
                                                      "workflows_map") if getattr(args, n)]
    if real_only and args.n8n != "real":
        return f"{', '.join(real_only)} need(s) --n8n real"
    if args.workflows and args.n8n_url:
        return "--workflows imports into the n8n the harness starts; a running n8n (--n8n-url) has its own"
    if args.workflows and not Path(args.workflows).exists():
        return f"--workflows {args.workflows}: no such file or directory"
    if args.workflows_map and not Path(args.workflows_map).is_file():
        return f"--workflows-map {args.workflows_map}: no such file"
    if args.n8n == "real" and not args.n8n_url:
        from avito_harness.real.n8n.install import N8nInstall

        install = N8nInstall.default()
        if install.installed_version() != install.version:
            return f"n8n {install.version} is not installed in {install.root}: run `avito-harness n8n install` first"
    return None


def run_run(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.judge.environment import TargetOptions
    from avito_harness.judge.run import RunOptions, run_acceptance
    from avito_harness.judge.verdict import CannotJudge, ExitCode, Verdict

    try:
        problem = _real_n8n_problem(args)
        if problem:
            raise CannotJudge(Category.USAGE, problem)
        if args.max_answer_bytes < 1024:
            raise CannotJudge(Category.USAGE, "--max-answer-bytes must be at least 1024")
        target = TargetOptions(
            gateway_url=args.gateway_url, gateway_api_key=args.gateway_api_key, gateway_cmd=args.gateway_cmd,
            stack_url=args.stack_url, n8n=args.n8n, n8n_url=args.n8n_url, n8n_api_key=args.n8n_api_key,
            postgres_url=args.postgres_url, workflows=args.workflows, workflows_map=args.workflows_map,
            request_timeout=args.request_timeout, start_timeout=args.start_timeout,
            scenario_timeout=args.scenario_timeout, max_answer_bytes=args.max_answer_bytes)
        if not args.run_timeout > 0:
            raise CannotJudge(Category.USAGE, "--run-timeout must be more than 0 seconds")
    except CannotJudge as exc:  # options that cannot work, named before anything starts
        console.print(Verdict(ExitCode.CANNOT_JUDGE, "not_judged", exc.category, exc.reason).line(), markup=False,
                      highlight=False)
        return 2
    options = RunOptions(target=target, stages=tuple(args.stage), scenarios=tuple(args.scenarios),
                         features=tuple(args.features), only_own_features=args.only_features, junit=args.junit,
                         json_report=args.json_report, html_report=args.html_report, run_timeout=args.run_timeout)
    return run_acceptance(options, console)


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "sim": run_sim, "steps": run_steps, "init": run_init, "n8n": run_n8n, "contract": run_contract,
    "serve": run_serve, "up": run_up_command, "demo": run_demo, "run": run_run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120, soft_wrap=True)
    return COMMANDS[args.command](args, console)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
