"""The commands that judge: ``run`` (the acceptance run), ``contract`` (a running gateway against the contract)
and ``steps`` (the step vocabulary). Exit codes: 0 judged and passed, 1 defects found, 2 could not judge."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from rich.console import Console
from rich.table import Table

from avito_harness.judge.verdict import Category

__all__ = ["harness_failed", "real_n8n_problem", "run_contract", "run_run", "run_steps", "writable"]


def writable(option: str, value: str | None) -> None:
    """A report path the run can write (its folder made); :class:`CannotJudge` before anything runs otherwise."""
    from avito_harness.judge.verdict import CannotJudge

    if not value:
        return
    path = Path(value)
    if path.is_dir():
        raise CannotJudge(Category.USAGE, f"{option} {value}: a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotJudge(Category.USAGE, f"{option} {value}: its folder cannot be made: {exc.strerror}") from None


def harness_failed(console: Console, exc: BaseException) -> int:
    """The harness itself failed: the traceback to stderr, the verdict line, exit 2 (never 1, never 0)."""
    import traceback

    from avito_harness.judge.verdict import ExitCode, Verdict

    traceback.print_exception(exc)
    console.print(Verdict(ExitCode.CANNOT_JUDGE, "not_judged", Category.HARNESS,
                          f"{type(exc).__name__}: {exc} (a bug of avito-harness: the traceback is above; please "
                          "report it)").line(), markup=False, highlight=False)
    return int(ExitCode.CANNOT_JUDGE)


def run_contract(args: argparse.Namespace, console: Console) -> int:
    # schemathesis and hypothesis load only for this command (the `contract` extra): the base install runs `run`
    from avito_harness.judge.verdict import CannotJudge, ExitCode, Verdict

    try:
        from avito_harness.judge.contract.report import print_report, write_json, write_junit
        from avito_harness.judge.contract.runner import ContractOptions, ContractRun, check_gateway
    except ImportError as exc:
        console.print(f"could not judge (exit 2) [setup_error]: the contract check needs schemathesis ({exc.name} is "
                      "missing): pip install 'avito-harness[contract]'", markup=False)
        return int(ExitCode.CANNOT_JUDGE)

    from avito_harness.cli.contract_target import contract_target

    target = (args.gateway_url or args.gateway_cmd or "").rstrip("/")
    run: ContractRun | None = None
    try:
        if not args.timeout > 0 or args.max_examples < 1:
            raise CannotJudge(Category.USAGE, "--timeout must be more than 0 seconds and --max-examples at least 1")
        for option, value in (("--json", args.json_report), ("--junit", args.junit)):
            writable(option, value)
        with contract_target(args) as gateway:
            options = ContractOptions(
                gateway_url=gateway.url, api_key=gateway.api_key, allow_writes=gateway.allow_writes,
                chat_ids=gateway.chat_ids, max_examples=args.max_examples, timeout=args.timeout,
                contract=Path(args.contract) if args.contract else None, profile=args.profile,
            )
            run = check_gateway(options)
        verdict = run.verdict()
        print_report(console, run, target)
    except CannotJudge as exc:
        verdict = Verdict(ExitCode.CANNOT_JUDGE, "not_judged", exc.category, exc.reason)
        console.print(verdict.line(), markup=False, highlight=False)
    except Exception as exc:  # a bug of the harness: never a verdict on the gateway
        return harness_failed(console, exc)
    if args.junit:
        write_junit(Path(args.junit), run, target, verdict)
    if args.json_report:
        write_json(Path(args.json_report), run, target, args.profile, verdict)
    return int(verdict.code)


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


def real_n8n_problem(args: argparse.Namespace) -> str | None:
    """Options that cannot work together, named before anything starts."""
    real_only = [f"--{n.replace('_', '-')}" for n in ("n8n_url", "n8n_api_key", "postgres_url", "workflows",
                                                      "workflows_map", "crm_schema") if getattr(args, n, None)]
    if real_only and args.n8n != "real":
        return f"{', '.join(real_only)} need(s) --n8n real"
    if args.workflows and args.n8n_url:
        return "--workflows imports into the n8n the harness starts; a running n8n (--n8n-url) has its own"
    if args.workflows and not Path(args.workflows).exists():
        return f"--workflows {args.workflows}: no such file or directory"
    if args.workflows_map and not Path(args.workflows_map).is_file():
        return f"--workflows-map {args.workflows_map}: no such file"
    schema = getattr(args, "crm_schema", None)
    if schema and not Path(schema).is_file():
        return f"--crm-schema {schema}: no such file"
    if schema and args.postgres_url:
        return "--crm-schema is applied to the Postgres the harness starts; yours (--postgres-url) has its schema"
    if args.n8n == "real" and importlib.util.find_spec("psycopg") is None:
        return "--n8n real keeps the CRM in PostgreSQL and needs psycopg: pip install 'avito-harness[postgres]'"
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
        problem = real_n8n_problem(args)
        if problem:
            raise CannotJudge(Category.USAGE, problem)
        if args.gateway_double:
            from avito_harness.cli.doubles_command import apply_double
            from avito_harness.cli.parser import build_parser

            apply_double(args, build_parser().parse_args(["run"]))
        if args.max_answer_bytes < 1024:
            raise CannotJudge(Category.USAGE, "--max-answer-bytes must be at least 1024")
        target = TargetOptions(
            gateway_url=args.gateway_url, gateway_api_key=args.gateway_api_key, gateway_cmd=args.gateway_cmd,
            gateway_app=args.gateway_app, stack_url=args.stack_url, n8n=args.n8n, n8n_url=args.n8n_url, n8n_api_key=args.n8n_api_key,
            postgres_url=args.postgres_url, workflows=args.workflows, workflows_map=args.workflows_map,
            crm_schema=getattr(args, "crm_schema", None),
            request_timeout=args.request_timeout, start_timeout=args.start_timeout,
            scenario_timeout=args.scenario_timeout, max_answer_bytes=args.max_answer_bytes,
            strict_avito=args.strict_avito, redis=args.redis, profile=args.profile)
        if not args.run_timeout > 0:
            raise CannotJudge(Category.USAGE, "--run-timeout must be more than 0 seconds")
        for option, value in (("--json", args.json_report), ("--junit", args.junit), ("--html", args.html_report)):
            writable(option, value)
    except CannotJudge as exc:  # options that cannot work, named before anything starts
        console.print(Verdict(ExitCode.CANNOT_JUDGE, "not_judged", exc.category, exc.reason).line(), markup=False,
                      highlight=False)
        return 2
    options = RunOptions(target=target, stages=tuple(args.stage), scenarios=tuple(args.scenarios),
                         features=tuple(args.features), only_own_features=args.only_features, junit=args.junit,
                         json_report=args.json_report, html_report=args.html_report, run_timeout=args.run_timeout)
    try:
        return run_acceptance(options, console)
    except Exception as exc:  # a bug of the harness: never a verdict on the gateway
        return harness_failed(console, exc)
