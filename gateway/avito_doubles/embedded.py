"""The catalogue's doubles as in-process factories: ``avito-harness run --gateway-app avito_doubles.embedded:NAME``
judges the double NAME on the harness's virtual clock, so the scenarios that need hours to pass see it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avito_doubles.catalogue import find

__all__: list[str] = []  # every double of the catalogue, by name (module __getattr__)


def __getattr__(name: str) -> Callable[..., Any]:
    try:
        return find(name).in_process
    except KeyError as e:
        raise AttributeError(str(e).strip("\"'")) from None
