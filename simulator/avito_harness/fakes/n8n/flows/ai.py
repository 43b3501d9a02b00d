"""The AI of the AI Appeal Router, made deterministic: regex rules over the batch text."""

from __future__ import annotations

import re

__all__ = ["answer_for"]


def answer_for(text: str, client_name: str | None, rules: list[dict[str, str]], default: str,
               *, has_images: bool = False) -> str:
    """The first rule whose ``match`` is found in ``text`` (case-insensitive) answers; else ``default``."""
    name = f", {client_name}" if client_name else ""
    lowered = text.lower()
    for rule in rules:
        if re.search(rule["match"], lowered, flags=re.IGNORECASE):
            answer = rule["answer"]
            break
    else:
        answer = default
    if has_images:
        answer += " Фото получили, спасибо."
    return answer.replace("{name}", name)
