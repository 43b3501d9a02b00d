"""Pieces of secrets in text: found (a leak check) and masked (reports never print them).

A leak is any run of at least :data:`MIN_PIECE` characters that also occurs in
a secret: a token's first 20 characters give an attacker as much as a
prefix-aware brute force needs, and are as bad as the whole token in a report.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MIN_PIECE", "leaked_piece", "mask"]

MIN_PIECE = 8


def _spans(text: str, secrets: Iterable[str], min_len: int) -> list[tuple[int, int]]:
    """Maximal [start, end) spans of ``text`` that are substrings of one secret, at least ``min_len`` long.

    One pass over ``text`` with every secret's ``min_len``-grams in one table: answers are scanned against
    dozens of tokens after every scenario, so the cost must not grow with their number.
    """
    grams: dict[str, list[str]] = {}
    for secret in {s for s in secrets if s and len(s) >= min_len}:
        for i in range(len(secret) - min_len + 1):
            grams.setdefault(secret[i:i + min_len], []).append(secret)
    spans: list[tuple[int, int]] = []
    i = 0
    while i <= len(text) - min_len:
        holders = grams.get(text[i:i + min_len])
        if holders is None:
            i += 1
            continue
        end = i + min_len
        for secret in holders:
            reach = i + min_len
            while reach < len(text) and text[i:reach + 1] in secret:
                reach += 1
            end = max(end, reach)
        spans.append((i, end))
        i = end
    return spans


def leaked_piece(text: str, secrets: Iterable[str], min_len: int = MIN_PIECE) -> str | None:
    """The longest piece of a secret found in ``text`` (``min_len`` characters or more), else None."""
    spans = _spans(text, secrets, min_len)
    if not spans:
        return None
    start, end = max(spans, key=lambda s: s[1] - s[0])
    return text[start:end]


def mask(text: str, secrets: Iterable[str], min_len: int = MIN_PIECE) -> str:
    """``text`` with every piece of a secret replaced by ``***``."""
    out, last = [], 0
    for start, end in _spans(text, secrets, min_len):
        out.append(text[last:start] + "***")
        last = end
    return "".join(out) + text[last:]
