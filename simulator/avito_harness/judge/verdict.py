"""What a run concludes: exit codes that say who is at fault, and why the harness could not judge.

0: everything selected was judged and passed. 1: judged, defects found. 2: the harness could not judge
(options, a feature file, the gateway or the real pipeline not starting, a scenario that did not finish),
with the reason in one line and a category distinct from any gateway defect. Nothing that did not run is
ever counted as passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from avito_harness.judge.safe_text import visible_line

__all__ = ["CannotJudge", "Category", "ExitCode", "Verdict", "decide"]


class ExitCode(IntEnum):
    PASSED = 0
    DEFECTS = 1
    CANNOT_JUDGE = 2


class Category(StrEnum):
    """Why something was not judged: never a defect of the gateway."""

    USAGE = "usage_error"  # options that cannot work together, or select nothing
    FEATURE = "feature_error"  # a feature file that does not parse, or a step the library does not have
    SETUP = "setup_error"  # the gateway, a port or the fakes could not be started or reached
    PIPELINE = "pipeline_error"  # the real pipeline (n8n, Postgres) could not start
    NOT_JUDGED = "not_judged"  # a selected scenario did not finish: skipped at run time, a deadline, a stop
    HARNESS = "harness_error"  # the harness itself failed (a bug: the traceback is on stderr, please report it)


class CannotJudge(Exception):
    """The harness cannot judge: ``category`` says whose problem it is, ``reason`` says it in one line."""

    def __init__(self, category: Category, reason: str, details: list[str] | None = None) -> None:
        lines = [line.strip() for line in reason.splitlines() if line.strip()] or [""]
        self.category = category
        #: every problem found, one line each (a reason of several lines is split into them)
        self.details = [visible_line(d, 600) for d in (details or (lines[1:] if len(lines) > 1 else []))]
        self.reason = visible_line(lines[0].rstrip(":") + (f": {self.details[0]}" if self.details and
                                                          len(lines) > 1 else ""), 1000)
        if len(self.details) > 1:
            self.reason += f" (and {len(self.details) - 1} more)"
        super().__init__(f"{category.value}: {self.reason}")


@dataclass(frozen=True)
class Verdict:
    code: ExitCode
    status: str  # "passed" | "defects" | "not_judged"
    category: Category | None = None
    reason: str | None = None

    def line(self) -> str:
        """The one line a terminal and a CI log end with."""
        if self.code is ExitCode.PASSED:
            return "verdict: passed (exit 0): everything selected was judged and passed"
        if self.code is ExitCode.DEFECTS:
            return "verdict: defects found (exit 1)" + (f"; also not judged: {self.reason}" if self.reason else "")
        return f"verdict: could not judge (exit 2) [{self.category}]: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {"exit_code": int(self.code), "status": self.status,
                "category": self.category.value if self.category else None, "reason": self.reason}


def decide(outcomes: Sequence[str], not_judged: Sequence[tuple[Category, str]], problem: CannotJudge | None) -> Verdict:
    """The verdict from each selected scenario's outcome ("passed" / "failed" / "not_judged"), the reasons the
    unjudged ones give, and a problem that stopped the run (or kept it from starting)."""
    failed = sum(1 for o in outcomes if o == "failed")
    reasons = [f"{r}" for _, r in not_judged]
    unjudged = sum(1 for o in outcomes if o != "passed" and o != "failed")
    if problem is not None:
        reason, category = problem.reason, problem.category
    elif unjudged:
        category = not_judged[0][0] if not_judged else Category.NOT_JUDGED
        reason = f"{unjudged} of {len(outcomes)} selected scenario(s) not judged" + (f": {reasons[0]}" if reasons else "")
    elif not outcomes:
        category, reason = Category.USAGE, "no scenario was selected"
    else:
        category, reason = None, None
    if failed:
        return Verdict(ExitCode.DEFECTS, "defects", category, reason)
    if category is not None:
        return Verdict(ExitCode.CANNOT_JUDGE, "not_judged", category, reason)
    return Verdict(ExitCode.PASSED, "passed")
