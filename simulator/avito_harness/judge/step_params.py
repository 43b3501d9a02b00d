"""Typed parameters of step phrases: what a ``{name:Type}`` accepts, so a wrong value is named before a run.

A phrase such as ``Avito answers every send with {preset:Preset}`` only matches a preset the fake Avito has,
and ``{seconds:Count}`` only a whole number of 0 or more; the feature check
(:mod:`avito_harness.judge.features`) then tells "503 is not a preset; presets: ..." from "no such step", and
``avito-harness steps`` lists what each parameter accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avito_harness.fakes.faults import AVITO_PRESETS

__all__ = ["PARAM_TYPES", "TYPES", "ParamType", "describe_field", "wrong_value"]


@dataclass(frozen=True)
class ParamType:
    """A parameter type: the text it accepts (``pattern``), what that is in words, and its value."""

    name: str
    what: str
    pattern: str
    convert: Callable[[str], Any] = str
    values: tuple[str, ...] = field(default=())  # the accepted values, when they are few (listed by `steps`)

    @classmethod
    def choice(cls, name: str, what: str, values: tuple[str, ...], convert: Callable[[str], Any] = str) -> ParamType:
        alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        return cls(name, what, f"(?:{alternatives})", convert, values)

    def converter(self) -> Callable[[str], Any]:
        """A converter in the form parse's custom types take (what ``parse.with_pattern`` sets on a function)."""

        def convert(text: str) -> Any:
            return self.convert(text)

        setattr(convert, "pattern", self.pattern)  # noqa: B010 - parse reads these two attributes
        setattr(convert, "regex_group_count", 0)  # noqa: B010
        return convert

    def describe(self) -> str:
        return f"{self.what}: {', '.join(self.values)}" if self.values else self.what


TYPES: dict[str, ParamType] = {t.name: t for t in (
    #: ``429`` is the short name the shipped features use for ``rate_limited_429``.
    ParamType.choice("Preset", "a fault preset of the fake Avito", ("429", *sorted(AVITO_PRESETS))),
    ParamType.choice("AuthStatus", "the status Avito answers an expired token with", ("401", "403"), int),
    ParamType("Count", "a whole number, 0 or more", r"\d+", int),
    ParamType("Positive", "a whole number, 1 or more", r"[1-9]\d*", int),
)}
#: ``extra_types`` for :func:`pytest_bdd.parsers.parse`.
PARAM_TYPES: dict[str, Callable[[str], Any]] = {t.name: t.converter() for t in TYPES.values()}


def describe_field(field_type: str | None) -> str:
    """What a field of a step pattern accepts, in words (``{n:d}`` -> "a whole number")."""
    if not field_type:
        return "any text (quoted where the pattern quotes it)"
    if field_type == "d":
        return "a whole number"
    known = TYPES.get(field_type)
    return known.describe() if known is not None else f"a value of type {field_type}"


def wrong_value(field_type: str | None, value: str) -> bool:
    """True when ``value`` is not what a field of this type accepts."""
    if field_type == "d":
        return not re.fullmatch(r"[+-]?\d+", value.strip())
    known = TYPES.get(field_type or "")
    return known is not None and not re.fullmatch(known.pattern, value)
