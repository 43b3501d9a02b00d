"""``avito-harness``: the command line (``avito-harness --help`` lists the commands).

Every command lives in a module by what it does: :mod:`.serving` (sim, serve, demo, up), :mod:`.judging`
(run, contract, steps), :mod:`.setup_commands` (init, n8n install, n8n check), :mod:`.doubles_command` (doubles) and
:mod:`.recording_commands` (record, replay, scenario from-recording); :mod:`.parser` holds their arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from avito_harness.cli.doubles_command import run_doubles
from avito_harness.cli.judging import run_contract, run_run, run_steps
from avito_harness.cli.load_command import run_load_command
from avito_harness.cli.parser import build_parser
from avito_harness.cli.recording_commands import run_record, run_replay, run_scenario
from avito_harness.cli.serving import run_demo, run_serve, run_sim, run_up_command
from avito_harness.cli.setup_commands import run_init, run_n8n

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "sim": run_sim, "steps": run_steps, "init": run_init, "n8n": run_n8n, "contract": run_contract,
    "serve": run_serve, "up": run_up_command, "demo": run_demo, "run": run_run,
    "record": run_record, "replay": run_replay, "scenario": run_scenario, "load": run_load_command,
    "doubles": run_doubles,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120, soft_wrap=True)
    return COMMANDS[args.command](args, console)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
