"""What the contract check is asked (options) and what it finds (violations per operation), masked for reports."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from avito_harness.judge.bounded_http import DEFAULT_REQUEST_TIMEOUT
from avito_harness.judge.leaks import mask
from avito_harness.judge.safe_text import visible

__all__ = ["ContractOptions", "OperationResult", "PROFILES", "Violation", "mask_answer"]

PROFILES = ("seed", "full")
#: JSON string values under these keys are secrets: never printed.
_SECRET_VALUE = re.compile(r'("[^"]*(?:token|secret|password|authorization|api[_-]?key)[^"]*"\s*:\s*")([^"]{8,})(")',
                           re.IGNORECASE)


@dataclass(frozen=True)
class ContractOptions:
    gateway_url: str
    api_key: str
    allow_writes: bool = False
    chat_ids: tuple[str, ...] = ()
    max_examples: int = 25
    timeout: float = DEFAULT_REQUEST_TIMEOUT  # seconds for a whole answer
    contract: Path | None = None
    profile: str = "seed"


@dataclass
class Violation:
    title: str
    message: str
    curl: str
    defect: str = "contract_violation"  # a code from avito_harness.judge.defects.CATALOGUE


@dataclass
class OperationResult:
    operation: str
    label: str
    calls: int = 0
    violations: list[Violation] = field(default_factory=list)
    skipped: str | None = None  # why it could not be judged (fully)

    @property
    def ok(self) -> bool:
        return not self.violations

    def masked(self, secrets: list[str]) -> None:
        """Every piece (8+ characters) of a secret masked and control characters made visible, in place."""
        for v in self.violations:
            v.message, v.curl = visible(mask(v.message, secrets)), visible(mask(v.curl, secrets))
        self.skipped = visible(mask(self.skipped, secrets)) if self.skipped else self.skipped


def mask_answer(text: str, api_key: str = "") -> str:
    """An answer as a report may print it: secret-looking JSON values and the API key masked."""
    text = _SECRET_VALUE.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    return mask(text, [api_key]) if api_key else text
