"""One selected scenario's result, as every report carries it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["NOT_RUN", "Recorded", "ScenarioResult"]

NOT_RUN = "did not run"


class Recorded:
    """What the step library records on a scenario's pytest item (``user_properties``) for the report to read:
    plain strings (pytest-xdist sends reports between processes and serializes only plain types)."""

    TRANSCRIPT = "transcript"
    FAILED_STEP = "failed step"
    FEATURE = "feature"
    ANOMALY = "anomaly"
    ANOMALY_CODE = "anomaly code"
    GATEWAY_OUTPUT = "gateway output"
    CRASH = "crash"


@dataclass
class ScenarioResult:
    name: str  # as written in the feature file (an outline's example rendered in)
    stage: str  # the rollout stage, "Avito errors", or a user's feature by its name
    feature: str = ""
    where: str = ""  # file:line of the scenario
    #: passed (its own steps ran and passed, and the checks after it), failed (a defect), not_judged
    outcome: str = "not_judged"
    category: str | None = "not_judged"  # why it was not judged (avito_harness.judge.verdict.Category)
    reason: str | None = NOT_RUN
    duration: float = 0.0
    failed_step: str | None = None
    error: str | None = None
    transcript: str = ""
    defect: str | None = None  # a stable code from avito_harness.judge.defects.CATALOGUE: the failure's main one
    #: every defect the scenario found, each {code, message, step}: all its checks ran
    defects: list[dict[str, str]] = field(default_factory=list)
    not_evaluated: list[str] = field(default_factory=list)  # checks a failed step kept from running
    anomaly: str | None = None  # the first anomalous hop the fakes recorded, if any
    extra: dict[str, str] = field(default_factory=dict)

    def passed(self) -> None:
        self.outcome, self.category, self.reason = "passed", None, None

    def failed(self, defect: str, error: str | None, findings: str = "") -> None:
        """Failed with ``defect``; ``findings`` (JSON, see ScenarioFindings.encoded) lists every defect found."""
        self.outcome, self.category, self.reason = "failed", None, None
        self.defect, self.error = defect, error if error is not None else self.error
        if findings:
            decoded = json.loads(findings)
            self.defects, self.not_evaluated = list(decoded["findings"]), list(decoded["not_evaluated"])
        elif not self.defects:
            self.defects = [{"code": defect, "message": (error or "").splitlines()[0][:800] if error else "",
                             "step": self.failed_step or ""}]

    def not_judged(self, category: str, reason: str) -> None:
        self.outcome, self.category, self.reason, self.defect = "not_judged", category, reason, None
