"""``avito-harness doubles`` and ``run --gateway-double NAME``: the planted-defect gateways, the harness catching a
bug in one command.

The doubles are our gateway with one thing broken (the package ``avito_doubles``, installed with the ``embedded``
extra). They import the gateway, so the harness never imports them: it reads their catalogue from
``python -m avito_doubles list`` and starts one as a process (``serve``), or by name in-process for the doubles
only the virtual-clock scenarios can see (``--gateway-app avito_doubles.embedded:NAME``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from avito_harness.judge.verdict import CannotJudge, Category

__all__ = ["DoubleEntry", "apply_double", "catalogue", "run_doubles"]

MISSING = ("the planted-defect gateways are our gateway with one thing broken, and need it: "
           "pip install 'avito-harness[embedded]'")


@dataclass(frozen=True)
class DoubleEntry:
    """One double as the catalogue lists it."""

    name: str
    codes: tuple[str, ...]  # the defect codes a run must name; () for a legitimate variant (it must pass)
    what: str
    scenarios: tuple[str, ...]  # the scenarios that catch it (a quick run selects them)
    embedded: bool  # judged in-process on the virtual clock
    args: tuple[str, ...]  # what its run needs besides (a shorter timeout, the full profile)

    @property
    def quick_run(self) -> str:
        """The one command that shows the harness catching it, on the scenarios that see it."""
        scenarios = " ".join(f"--scenario {shlex.quote(s)}" for s in self.scenarios)
        return f"avito-harness run --gateway-double {self.name} {scenarios}".strip()


def catalogue() -> list[DoubleEntry]:
    """The doubles installed beside the harness; :class:`CannotJudge` (setup) naming the extra when they are not."""
    if importlib.util.find_spec("avito_doubles") is None or importlib.util.find_spec("avito_gateway") is None:
        raise CannotJudge(Category.SETUP, MISSING)
    listed = subprocess.run([sys.executable, "-m", "avito_doubles", "list"], capture_output=True, text=True,
                            timeout=60, check=False)
    if listed.returncode != 0:
        last = (listed.stderr.strip().splitlines() or ["no output"])[-1]
        raise CannotJudge(Category.SETUP, f"the planted-defect gateways could not be listed: {last}")
    return [DoubleEntry(name=d["name"], codes=tuple(d["codes"]), what=d["what"], scenarios=tuple(d["scenarios"]),
                        embedded=bool(d["embedded"]), args=tuple(d["args"])) for d in json.loads(listed.stdout)]


def find(name: str) -> DoubleEntry:
    entries = {d.name: d for d in catalogue()}
    if name not in entries:
        raise CannotJudge(Category.USAGE, f"--gateway-double {name}: no such double; `avito-harness doubles` lists "
                                          f"{len(entries)}")
    return entries[name]


def apply_double(args: argparse.Namespace, defaults: argparse.Namespace) -> DoubleEntry:
    """Point ``run`` at the double: its command (or its in-process factory), and the options its run needs, unless
    the user gave those options themselves (``defaults`` holds what ``run`` would have without them)."""
    given = [f"--{n}" for n in ("gateway_url", "gateway_cmd", "gateway_app") if getattr(args, n)]
    if given:
        raise CannotJudge(Category.USAGE, f"--gateway-double starts the double itself; drop {' and '.join(given)}"
                          .replace("_", "-"))
    double = find(args.gateway_double)
    if double.embedded:
        args.gateway_app = f"avito_doubles.embedded:{double.name}"
    else:
        args.gateway_cmd = f"{shlex.quote(sys.executable)} -m avito_doubles serve {double.name} --port {{port}}"
    if double.args:  # ("--request-timeout", "3"): parsed as run parses them
        from avito_harness.cli.parser import build_parser

        needed = build_parser().parse_args(["run", *double.args])
        for dest, default in vars(defaults).items():
            if getattr(args, dest) == default and getattr(needed, dest) != default:
                setattr(args, dest, getattr(needed, dest))
    return double


def run_doubles(args: argparse.Namespace, console: Console) -> int:
    from avito_harness.judge.verdict import ExitCode, Verdict

    try:
        entries = catalogue()
    except CannotJudge as exc:
        console.print(Verdict(ExitCode.CANNOT_JUDGE, "not_judged", exc.category, exc.reason).line(), markup=False)
        return int(ExitCode.CANNOT_JUDGE)
    if args.json:
        print(json.dumps([{**vars(d), "quick_run": d.quick_run} for d in entries], ensure_ascii=False, indent=1))
        return 0
    doubles = [d for d in entries if d.codes]
    table = Table(title=f"{len(doubles)} gateways with planted defects, {len(entries) - len(doubles)} legitimate "
                        "variants (they must pass)", header_style="bold", show_lines=False)
    for column in ("name", "the run must name", "what is broken"):
        table.add_column(column)
    for d in entries:
        table.add_row(d.name, ", ".join(d.codes) or "(passes)", d.what + (" (in-process)" if d.embedded else ""))
    console.print(table)
    example = next(d for d in doubles if not d.embedded)
    console.print(f"Run one on the scenarios that catch it (exit 1, its defect named):\n  {example.quick_run}\n"
                  "or the whole run: avito-harness run --gateway-double NAME", markup=False)
    return 0
