"""Every step phrase of the library, with one example each: what ``avito-harness steps`` prints.

Generated from the step definitions themselves (pytest-bdd's registry), so the list cannot drift from the
code; each example is a real line of the shipped features where one uses the phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_bdd.steps import step_function_context_registry

from avito_harness.paths import features_dir

__all__ = ["Phrase", "step_phrases"]

KEYWORDS = ("Given ", "When ", "Then ", "And ", "But ")


@dataclass(frozen=True)
class Phrase:
    kind: str  # given / when / then
    pattern: str  # as written in the step definition ({name} and {n:d} are parameters)
    example: str  # a line that uses it


SAMPLE_NUMBERS = {"status": "401", "n": "3", "seconds": "60", "requests": "100", "window": "60", "connections": "20"}


def _example_from_pattern(pattern: str) -> str:
    return re.sub(r"\{(\w+)(:d)?\}",
                  lambda m: SAMPLE_NUMBERS.get(m.group(1), "2") if m.group(2) else m.group(1).upper(), pattern)


def step_phrases() -> list[Phrase]:
    import avito_harness.bdd.steps  # noqa: F401 - registers the step definitions

    lines = [line.strip() for path in sorted(features_dir().glob("*.feature"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    steps = [line.split(" ", 1)[1] for line in lines if line.startswith(KEYWORDS)]
    found: dict[tuple[str, str], Phrase] = {}
    for context in list(step_function_context_registry.values()):
        if context.step_func.__module__ != "avito_harness.bdd.steps":
            continue
        kind, pattern = str(context.type), context.parser.name
        example = next((s for s in steps if context.parser.is_matching(s)), _example_from_pattern(pattern))
        found[(kind, pattern)] = Phrase(kind, pattern, f"{kind.capitalize()} {example}")
    order = {"given": 0, "when": 1, "then": 2}
    return sorted(found.values(), key=lambda p: (order.get(p.kind, 3), p.pattern))
