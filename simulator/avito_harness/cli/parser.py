"""The command line's arguments: one sub-parser per command, options named the same way everywhere."""

from __future__ import annotations

import argparse

from avito_harness.fakes.settings import DEMO_API_KEY

__all__ = ["build_parser", "version"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avito-harness", description="Avito integration harness and simulator")
    parser.add_argument("--version", action="version", version=f"avito-harness {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write CI files that run the acceptance run in your repository")
    init.add_argument("--ci", choices=["github", "gitlab"], required=True, help="the CI service")
    init.add_argument("--gateway-cmd", default="my-gateway --port {port}",
                      help="how CI starts your gateway ({port} is replaced; the deployment's variables are set)")
    init.add_argument("--features", help="a directory of your own .feature files to run too")
    init.add_argument("--docker", action="store_true", help="also write docker-compose.test.yml (gateway as an image)")
    init.add_argument("--gateway-image", default="my-gateway:latest", help="your gateway's image (with --docker)")
    init.add_argument("--dir", default=".", help="the repository to write into (default: here)")
    init.add_argument("--install", help="what CI pip-installs: a wheel path, a git URL or . (required: the harness "
                                        "is not on PyPI)")
    init.add_argument("--gateway-install", help="how CI installs your gateway (e.g. 'python -m pip install .')")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    n8n = sub.add_parser("n8n", help="the real n8n (npm, pinned) for testing real workflows")
    n8n_sub = n8n.add_subparsers(dest="n8n_command", required=True)
    n8n_install = n8n_sub.add_parser("install", help="install n8n 2.8.4 into the cache once (~4.5 min, ~2.3 GB; "
                                                     "Node.js >= 20.19)")
    n8n_install.add_argument("--if-node", action="store_true",
                             help="without a usable Node.js, say so and succeed (make test: the real-n8n tests skip)")
    n8n_check = n8n_sub.add_parser("check", help="your exported workflows against the rollout plan (n8n not started)")
    n8n_check.add_argument("--workflows", metavar="DIR", required=True, help="your exported workflow JSON")
    n8n_check.add_argument("--workflows-map", metavar="FILE", help="YAML: credential names and hosts -> the harness's")
    record = sub.add_parser("record", help="a proxy that records what Avito really does (HAR), for replay")
    record.add_argument("--out", required=True, help="the recording (HAR 1.2), rewritten after every call")
    record.add_argument("--upstream", default="https://api.avito.ru", help="where calls go on to (Avito's API)")
    record.add_argument("--port", type=int, default=8091, help="the proxy's port on 127.0.0.1 (8091; 0 = free)")
    record.add_argument("--public-url", help="the proxy as Avito reaches it, for the webhooks (default: its URL)")
    record.add_argument("--webhook-to", help="where recorded webhooks go on to (default: the URL subscribed)")
    record.add_argument("--anonymize", action="store_true", help="replace names, texts, phones and media links")
    record.add_argument("--seed", type=int, default=0, help="the fakes' seed with --anonymize (same seed, same fakes)")
    replay = sub.add_parser("replay", help="the fake Avito answering as a recording says, its webhooks again")
    replay.add_argument("recording", help="a recording made by `avito-harness record` (HAR)")
    replay.add_argument("--avito-port", type=int, default=8080, help="the fake Avito's port (8080; 0 = free)")
    replay.add_argument("--webhook-to", help="deliver the recorded webhooks here (the gateway's webhook URL)")
    replay.add_argument("--start-after", type=float, default=3.0, help="seconds before the first webhook (3)")
    replay.add_argument("--exit", action="store_true", help="stop once the webhooks are delivered")
    load = sub.add_parser("load", help="many shops' customers and CRM against the gateway, on Locust, judged")
    load.add_argument("--shops", type=int, default=10, help="Avito accounts (shops) the gateway serves (10)")
    load.add_argument("--chats", type=int, default=3, help="chats per shop (3)")
    load.add_argument("--duration", type=float, default=30, help="seconds of load (30)")
    load.add_argument("--rate", type=float, default=1.0, help="customer messages, and replies, a second per shop (1)")
    load.add_argument("--workers", type=int, default=0, help="Locust's distributed mode here: a master and N workers")
    load.add_argument("--web", action="store_true", help="Locust's web UI on 127.0.0.1:8089 (it starts the load)")
    load.add_argument("--gateway-cmd", help="the gateway to load (default: ours); it gets ACCOUNTS_FILE for the shops")
    load.add_argument("--shards", type=int, default=1,
                      help="the fakes as N processes (a fake Avito and a fake n8n each), each owning every n-th shop (1)")
    load.add_argument("--replicas", type=int, default=1,
                      help="gateways sharing --database-url, each serving every n-th shop (1)")
    load.add_argument("--database-url", help="the gateways' PostgreSQL (postgresql://...; default: SQLite each)")
    load.add_argument("--json", help="write the judged summary here")
    scenario = sub.add_parser("scenario", help="scenario files: make one from a recording")
    scenario_sub = scenario.add_subparsers(dest="scenario_command", required=True)
    from_recording = scenario_sub.add_parser("from-recording", help="a recording as a scenario you can edit and keep")
    from_recording.add_argument("recording", help="a recording made by `avito-harness record` (HAR)")
    from_recording.add_argument("--out", help="write the scenario here (default: print it)")
    steps = sub.add_parser("steps", help="every step phrase for your own .feature files, with an example each")
    steps.add_argument("--markdown", action="store_true", help="print a Markdown table")
    sim = sub.add_parser("sim", help="serve the fake Avito, the fake n8n, the fake speech-to-text, our gateway and "
                                     "the demo page until Ctrl-C")
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
    sim.add_argument("--api-key", "--gateway-api-key", dest="gateway_api_key", default=DEMO_API_KEY,
                     help=f"X-API-Key of the gateway ({DEMO_API_KEY}; --gateway-api-key also works)")
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
    doubles = sub.add_parser("doubles", help="our gateway with planted defects: list them (run one with run "
                                             "--gateway-double NAME)")
    doubles.add_argument("--json", action="store_true", help="the catalogue as JSON")
    run = sub.add_parser("run", help="the five-stage acceptance run (make run)",
                         description="Exit codes: 0 everything selected was judged and passed; 1 defects found; "
                                     "2 the harness could not judge (options, a feature file, the gateway or the "
                                     "pipeline not starting, a scenario that did not finish), with the reason.")
    run.add_argument("--stage", action="append", default=[], choices=["1", "2", "3", "4", "5", "errors"],
                     help="run only this stage (repeatable; errors = the Avito errors)")
    run.add_argument("--gateway-url", help="an already running gateway configured with the fakes (see `sim`)")
    run.add_argument("--api-key", "--gateway-api-key", dest="gateway_api_key",
                     help="its X-API-Key (default test-api-key; --gateway-api-key also works)")
    run.add_argument("--gateway-cmd", help="start the gateway with this command ({port} is replaced)")
    run.add_argument("--gateway-double", metavar="NAME",
                     help="start one of our planted-defect gateways (`avito-harness doubles` lists them)")
    run.add_argument("--gateway-app", metavar="MODULE:CALLABLE",
                     help="a Python gateway in-process on the harness's virtual clock, so the virtual-clock scenarios "
                          "run too: CALLABLE(settings: dict, clock) returns its ASGI app (see README)")
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
    run.add_argument("--profile", choices=["seed", "full"], default="seed",
                     help="seed (default): judge what SPEC promises; full: also our gateway's extensions (error codes "
                          "and retryable, 5xx as 502, Idempotency-Key, our image and bulk bodies, 429 with Retry-After)")
    run.add_argument("--redis", action="store_true",
                     help="start a real Redis (Debian's redis-server) for the gateway --gateway-cmd starts; it gets "
                          "REDIS_URL")
    run.add_argument("--strict-avito", action="store_true",
                     help="the fake Avito refuses a near miss (Basic token auth, another API version, a send without "
                          "type, a probe answered non-200) exactly as Avito does; by default it serves it as the call "
                          "it nearly is and names the mistake, so deeper defects show in the same run")
    run.add_argument("--junit", help="write JUnit XML to this file")
    run.add_argument("--json", dest="json_report", help="write the results (with transcripts) as JSON")
    run.add_argument("--html", dest="html_report", help="write an HTML report")
    contract = sub.add_parser("contract", help="check a running gateway against contracts/gateway.openapi.yaml",
                              description="Exit codes: 0 every operation judged and passed; 1 violations found; 2 the "
                                          "harness could not judge (nothing answers, the key is refused, ...).")
    contract.add_argument("--gateway-url", help="base URL of a running gateway to check")
    contract.add_argument("--gateway-cmd", help="start the gateway with this command against the fakes ({port} is "
                                                "replaced), as run does; its sends go to the fake Avito, so they run")
    contract.add_argument("--api-key", "--gateway-api-key", dest="api_key",
                          help="its X-API-Key (the same option as run's; --gateway-api-key also works; with "
                               "--gateway-cmd the harness gives it test-api-key unless you name one)")
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


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("avito-harness")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown (not installed)"


def _real_n8n_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n8n", choices=("light", "real"), default="light",
                        help="light: BatteryCRM's workflows played in Python (default); real: n8n itself runs them over "
                             "a real Postgres (run `avito-harness n8n install` once)")
    parser.add_argument("--n8n-url", help="with --n8n real: a running n8n with the workflows active, instead of ours")
    parser.add_argument("--n8n-api-key", help="its public API key (to judge by its executions)")
    parser.add_argument("--postgres-url", help="with --n8n real: the CRM's Postgres (default: the harness starts one)")
    parser.add_argument("--workflows", metavar="DIR", help="with --n8n real: your exported workflow JSON instead of ours")
    parser.add_argument("--crm-schema", metavar="FILE",
                        help="with --n8n real: your CRM's SQL (your tables) applied before ours fill in what it lacks")
    parser.add_argument("--workflows-map", metavar="FILE",
                        help="YAML: your workflows' credential names and hosts -> the harness's (see the README)")
