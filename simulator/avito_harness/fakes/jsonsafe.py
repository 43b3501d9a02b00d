"""Recorded JSON kept viewable: bodies nested deeper than the fakes' tools can walk are stored as a summary.

Python's recursive helpers (``dataclasses.asdict``, FastAPI's encoder, secret masking) fail a few hundred
levels down; one hostile body must not make ``/_sim/received`` or ``/_sim/journal`` answer 500 until reset.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_VIEW_DEPTH", "depth", "loads_viewable"]

MAX_VIEW_DEPTH = 64
_TEXT_LIMIT = 4096


def depth(value: Any, limit: int = MAX_VIEW_DEPTH) -> int:
    """Nesting depth, walked without recursion; stops counting once past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)
    return deepest


def _summary(text: str) -> dict[str, str]:
    return {"_too_deep": f"JSON nested deeper than {MAX_VIEW_DEPTH} levels; shown as text", "text": text[:_TEXT_LIMIT]}


def loads_viewable(text: str) -> Any:
    """``json.loads`` whose result is always viewable: JSON nested deeper than :data:`MAX_VIEW_DEPTH` (or too deep
    to parse at all) becomes a summary holding the start of the text. Raises ValueError for what is not JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        return _summary(text)
    return value if depth(value) <= MAX_VIEW_DEPTH else _summary(text)
