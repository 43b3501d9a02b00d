"""Text from outside (a gateway's answers and output, a user's feature files) made safe to print.

A gateway under test may print or answer anything: escape sequences that clear the screen, move the cursor,
forge a "43 passed" line over the real summary, hide text or plant OSC 8 links. Every such string is shown
with its control characters as visible ``\\xNN`` escapes (the evidence stays readable, nothing is executed).
"""

from __future__ import annotations

import re

__all__ = ["visible", "visible_line"]

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates that reorder
# what a terminal shows (a line can be made to read differently from what it holds).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(text: str | None) -> str:
    """``text`` with every control character shown as an escape; newlines and tabs kept."""
    return _CONTROL.sub(_escape, text) if text else ""


def visible_line(text: str | None, limit: int = 300) -> str:
    """One line: :func:`visible`, newlines shown as `` / ``, cut at ``limit`` characters."""
    line = visible(text).replace("\r\n", "\n").replace("\n", " / ").replace("\t", " ")
    return line if len(line) <= limit else line[: limit - 1] + "…"
