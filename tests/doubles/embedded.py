"""The catalogue's doubles as in-process factories: ``avito-harness run --gateway-app tests.doubles.embedded:NAME``
judges the double NAME on the harness's virtual clock, so the scenarios that need hours to pass see it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.doubles.broken_gateway import DOUBLES, VARIANTS


def __getattr__(name: str) -> Callable[..., Any]:
    double = {**DOUBLES, **VARIANTS}.get(name)
    if double is None:
        raise AttributeError(f"no double {name!r}; known: {', '.join(sorted({**DOUBLES, **VARIANTS}))}")
    return double.in_process
