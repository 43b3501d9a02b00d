"""A shop's workflows reviewed against the rollout plan, as results of the run: one per promise of the plan
(:data:`avito_harness.real.n8n.rollout.CHECKS`), failed with every finding it has, passed when it has none."""

from __future__ import annotations

from collections.abc import Sequence

from avito_harness.judge.findings import Finding, ScenarioFindings
from avito_harness.judge.results import ScenarioResult
from avito_harness.real.n8n.rollout import CHECKS, RolloutFinding

__all__ = ["STAGE", "rollout_results"]

STAGE = "0 workflows"


def rollout_results(findings: Sequence[RolloutFinding], triggers: Sequence[str]) -> list[ScenarioResult]:
    """Each check of the plan as a result; the workflows that run on their own are named in every transcript."""
    read = "\n".join(["read from the exported workflow files (this check runs nothing)", *triggers])
    results = []
    for check in CHECKS:
        result = ScenarioResult(name=check.name, stage=STAGE, feature="your workflows against the rollout plan",
                                where=f"rollout plan, stage {check.stage}", transcript=read)
        mine = [f for f in findings if f.code in check.codes]
        if mine:
            found = ScenarioFindings([Finding(f.code, f"{f.where}: {f.message}", "") for f in mine], [])
            result.failed(mine[0].code, None, findings=found.encoded())
        else:
            result.passed()
        results.append(result)
    return results
