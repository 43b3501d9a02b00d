"""The commands that set a project up: ``init`` (CI files for the user's repository) and ``n8n install``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

__all__ = ["run_init", "run_n8n"]


def run_init(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.cli.ci_init import CiOptions, MissingInstall, write_ci_files

    options = CiOptions(args.ci, args.gateway_cmd, args.features, args.docker, args.gateway_image, args.force,
                        args.install, args.gateway_install)
    try:
        written = write_ci_files(options, Path(args.dir))
    except MissingInstall as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    except FileExistsError as exc:
        console.print(f"[red]error:[/red] already there: {exc} (--force overwrites)")
        return 2
    for path in written:
        console.print(f"wrote {path}")
    if args.gateway_cmd == "my-gateway --port {port}":
        console.print("[yellow]edit the gateway command[/yellow] (or pass --gateway-cmd): it starts your gateway in CI")
    return 0


def run_n8n(args: argparse.Namespace, console: Console) -> int:
    if args.n8n_command == "check":
        from avito_harness.cli.reviewing import run_workflow_check

        return run_workflow_check(args, console)
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
