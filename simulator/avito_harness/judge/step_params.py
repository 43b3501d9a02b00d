"""Typed parameters of step phrases: what a ``{name:Type}`` accepts, so a wrong value is named before a run.

A phrase such as ``Avito answers every send with {preset:Preset}`` only matches a preset the fake Avito has;
the feature check (:mod:`avito_harness.judge.features`) then tells "503 is not a preset; presets: ..." from
"no such step", and ``avito-harness steps`` lists the values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from avito_harness.fakes.faults import AVITO_PRESETS

__all__ = ["CHOICES", "PARAM_TYPES", "Choice", "describe_field"]


@dataclass(frozen=True)
class Choice:
    """A parameter type that accepts one of ``values``."""

    name: str
    what: str  # what a value is, for messages ("a fault preset")
    values: tuple[str, ...]

    def converter(self) -> Callable[[str], str]:
        """A converter in the form parse's custom types take (what ``parse.with_pattern`` sets on a function)."""
        alternatives = "|".join(re.escape(v) for v in sorted(self.values, key=len, reverse=True))

        def convert(text: str) -> str:
            return text

        setattr(convert, "pattern", f"(?:{alternatives})")  # noqa: B010 - parse reads these two attributes
        setattr(convert, "regex_group_count", 0)  # noqa: B010
        return convert


#: ``429`` is the short name the shipped features use for ``rate_limited_429``.
PRESET = Choice("Preset", "a fault preset of the fake Avito", ("429", *sorted(AVITO_PRESETS)))

CHOICES: dict[str, Choice] = {c.name: c for c in (PRESET,)}
#: ``extra_types`` for :func:`pytest_bdd.parsers.parse`.
PARAM_TYPES: dict[str, Callable[[str], str]] = {c.name: c.converter() for c in CHOICES.values()}


def describe_field(field_type: str | None) -> str:
    """What a field of a step pattern accepts, in words (``{n:d}`` -> "a whole number")."""
    if not field_type:
        return "any text (quoted where the pattern quotes it)"
    if field_type == "d":
        return "a whole number"
    choice = CHOICES.get(field_type)
    if choice is not None:
        return f"{choice.what}: {', '.join(choice.values)}"
    return f"a value of type {field_type}"
