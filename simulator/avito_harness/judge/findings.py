"""What a scenario found: each defect with its code, what was seen and the step, all of them together.

Every check of a scenario runs (see :func:`avito_harness.judge.steps.checks.check`); when its steps are over,
a scenario with findings fails once with :class:`ScenarioFindings`, which carries them all to the report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["Finding", "ScenarioFindings"]


@dataclass(frozen=True)
class Finding:
    """One defect a scenario found: its code, what was seen, and the step (or the check after the steps)."""

    code: str
    message: str
    step: str

    def line(self) -> str:
        return f"[{self.code}] {self.message}" + (f" (at: {self.step})" if self.step else "")


class ScenarioFindings(AssertionError):
    """A scenario's defects, all of them, in the order they were found; ``not_evaluated`` are the checks a failed
    Given or When step kept from running."""

    def __init__(self, findings: list[Finding], not_evaluated: list[str]) -> None:
        self.findings, self.not_evaluated = findings, not_evaluated
        lines = [f.line() for f in findings] + ([f"not evaluated: {'; '.join(not_evaluated)}"] if not_evaluated else [])
        super().__init__("\n".join(lines))

    def encoded(self) -> str:
        """Plain JSON (reports cross processes under pytest-xdist)."""
        return json.dumps({"findings": [asdict(f) for f in self.findings], "not_evaluated": self.not_evaluated},
                          ensure_ascii=False)
