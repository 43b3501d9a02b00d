"""What an exception raised while a scenario ran means for the verdict: a named defect, or "not judged".

A check that fails names its defect (:class:`~avito_harness.judge.defects.Defect`); a deadline or a broken
connection of the gateway is a defect of its own class; anything the harness could not do (a scenario
deadline, a step the library lacks, a pipeline that died) is not judged, never a defect of the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pytest_bdd.exceptions import StepDefinitionNotFoundError

from avito_harness.judge.bounded_http import AnswerTooLarge, RequestDeadlineHit
from avito_harness.judge.defects import Defect
from avito_harness.judge.findings import ScenarioFindings
from avito_harness.judge.safe_text import visible_line
from avito_harness.judge.verdict import CannotJudge, Category
from avito_harness.stack.control_clients import SimClientError

__all__ = ["Outcome", "classify"]


@dataclass(frozen=True)
class Outcome:
    kind: str  # "failed" | "not_judged"
    defect: str | None = None
    category: Category | None = None
    reason: str = ""
    findings: str = ""  # every finding of the scenario, as JSON (see ScenarioFindings.encoded)

    def as_strings(self) -> tuple[str, str, str, str, str]:
        return (self.kind, self.defect or "", self.category.value if self.category else "", self.reason, self.findings)

    @classmethod
    def from_strings(cls, value: tuple[str, ...]) -> Outcome:
        kind, defect, category, reason, findings = (*value, "", "", "", "", "")[:5]
        return cls(kind, defect or None, Category(category) if category else None, reason, findings)


def classify(exc: BaseException) -> Outcome:
    if isinstance(exc, CannotJudge):
        return Outcome("not_judged", category=exc.category, reason=exc.reason)
    if isinstance(exc, SimClientError):  # the fakes refused the harness's own request: a step's value, or a harness bug
        return Outcome("not_judged", category=Category.FEATURE,
                       reason=visible_line(f"a step asked the fakes for something they refused: {exc}", 600))
    if isinstance(exc, StepDefinitionNotFoundError):
        return Outcome("not_judged", category=Category.FEATURE, reason=visible_line(str(exc), 600))
    if isinstance(exc, ScenarioFindings):
        return Outcome("failed", defect=exc.findings[0].code, findings=exc.encoded())
    if isinstance(exc, Defect):
        return Outcome("failed", defect=exc.code)
    if isinstance(exc, RequestDeadlineHit):
        return Outcome("failed", defect="no_answer_in_time")
    if isinstance(exc, AnswerTooLarge):
        return Outcome("failed", defect="answer_too_large")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return Outcome("failed", defect="connection_broken")
    if isinstance(exc, httpx.ConnectError):
        return Outcome("failed", defect="gateway_crashed")
    return Outcome("failed", defect="unclassified")
