"""Every step phrase of the library, with one example and its parameters: what ``avito-harness steps`` prints.

Generated from the step definitions themselves (pytest-bdd's registry), so the list cannot drift from the
code; each example is a real line of the shipped features where one uses the phrase, and each parameter says
what it accepts (a fault preset lists the presets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from avito_harness.judge.features import FIELD, step_library
from avito_harness.judge.step_params import describe_field
from avito_harness.paths import features_dir

__all__ = ["Phrase", "step_phrases"]

KEYWORDS = ("Given ", "When ", "Then ", "And ", "But ")


@dataclass(frozen=True)
class Phrase:
    kind: str  # given / when / then
    pattern: str  # as written in the step definition ({name} and {n:d} are parameters)
    example: str  # a line that uses it
    parameters: tuple[tuple[str, str], ...] = ()  # (name, what it accepts)


SAMPLE_NUMBERS = {"status": "401", "n": "3", "seconds": "60", "requests": "100", "window": "60", "connections": "20"}


def _example_from_pattern(pattern: str) -> str:
    def sample(m: re.Match[str]) -> str:
        if m.group(2) == "d":
            return SAMPLE_NUMBERS.get(m.group(1), "2")
        return m.group(1).upper() if not m.group(2) else "429"

    return FIELD.sub(sample, pattern)


def step_phrases() -> list[Phrase]:
    lines = [line.strip() for path in sorted(features_dir().glob("*.feature"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    steps = [line.split(" ", 1)[1] for line in lines if line.startswith(KEYWORDS)]
    found: dict[tuple[str, str], Phrase] = {}
    for d in step_library():
        example = next((s for s in steps if d.matches(s)), _example_from_pattern(d.pattern))
        params = tuple((m.group(1), describe_field(m.group(2))) for m in FIELD.finditer(d.pattern))
        shown = FIELD.sub(lambda m: "{" + m.group(1) + (":d" if m.group(2) == "d" else "") + "}", d.pattern)
        found[(d.kind, d.pattern)] = Phrase(d.kind, shown, f"{d.kind.capitalize()} {example}", params)
    order = {"given": 0, "when": 1, "then": 2}
    return sorted(found.values(), key=lambda p: (order.get(p.kind, 3), p.pattern))
