"""The step library, split by subject: fixtures and hooks, Given, When, and the Then checks.

Loaded as pytest plugins by :mod:`avito_harness.bdd.steps` (the public name users load with ``-p``);
:func:`load` imports every module, which registers the step definitions with pytest-bdd.
"""

from __future__ import annotations

import importlib

__all__ = ["MODULES", "load"]

MODULES = [f"avito_harness.judge.steps.{name}" for name in ("fixtures", "given", "when", "then_gateway", "then_chat",
                                                                  "health", "content", "recorded")]


def load() -> None:
    for name in MODULES:
        importlib.import_module(name)
