"""``avito-harness n8n check``: a shop's exported workflows against the rollout plan, without starting n8n.

The same review ``run --n8n real --workflows`` starts with (seconds, no Postgres or n8n needed): every
rollout finding with its workflow and node, and every reason the harness could not import the workflows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from avito_harness.judge.report import print_report
from avito_harness.judge.rollout_results import rollout_results
from avito_harness.judge.verdict import CannotJudge, Category, decide
from avito_harness.real.n8n.install import N8nInstall
from avito_harness.real.n8n.mapping import URL_ROLES, MappingError, WorkflowMap, map_workflows, read_workflows
from avito_harness.real.n8n.rollout import AVITO_HOSTS, own_triggers, review
from avito_harness.real.n8n.validate import NodeCatalogue, workflow_problems

__all__ = ["run_workflow_check"]


def run_workflow_check(args: argparse.Namespace, console: Console) -> int:
    started = time.perf_counter()
    for option, value in (("--workflows", args.workflows), ("--workflows-map", args.workflows_map)):
        if value and not Path(value).exists():
            console.print(f"could not judge (exit 2) [usage_error]: {option} {value}: no such file or directory",
                          markup=False)
            return 2
    try:
        mapping = WorkflowMap.read(Path(args.workflows_map)) if args.workflows_map else WorkflowMap()
        originals = read_workflows(Path(args.workflows))
    except MappingError as exc:
        console.print(f"could not judge (exit 2) [usage_error]: {exc}", markup=False, highlight=False)
        return 2
    problems: list[str] = []
    urls = {role: f"http://127.0.0.1:9/{role}" for role in URL_ROLES}  # where the run would send them
    install = N8nInstall.default()
    catalogue = NodeCatalogue.from_install(install) if install.installed_version() == install.version else None
    try:
        mapped = map_workflows(originals, mapping, urls=urls)
        problems = workflow_problems([(Path(f"{w.get('name')}.json"), w) for w in mapped], catalogue,
                                     allowed_hosts=set(urls.values()))
    except MappingError as exc:
        problems = str(exc).splitlines()[1:] or [str(exc)]
    problems = [p.strip() for p in problems]
    triggers = own_triggers(originals)
    results = rollout_results(review(originals, avito_hosts=AVITO_HOSTS | mapping.avito_hosts()), triggers)
    problem = (CannotJudge(Category.PIPELINE, f"n8n could not run these workflows as they are ({len(problems)} "
                           f"problem(s)): {problems[0]}") if problems else None)
    verdict = decide([r.outcome for r in results], [], problem)
    notes = [*triggers,
             *([] if catalogue else [f"n8n {install.version} is not installed: node types were not checked"])]
    print_report(console, results, title=f"Workflows {args.workflows} against the rollout plan", real_n8n=False,
                 elapsed=time.perf_counter() - started, verdict=verdict, problems=problems if len(problems) > 1 else (),
                 notes=notes)
    return int(verdict.code)
