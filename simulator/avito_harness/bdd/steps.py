"""The acceptance run's step library as a pytest plugin: the environment, the gateway under test, every phrase.

``avito-harness run`` loads it; in your own pytest suite, ``pytest -p avito_harness.bdd.steps`` (or
``pytest_plugins = ["avito_harness.bdd.steps"]`` in your top-level conftest.py) gives your pytest-bdd feature
files the same steps, with ``--avito-gateway-cmd "CMD {port}"`` or ``--avito-gateway-url URL`` to run them
against your gateway. ``avito-harness steps`` lists every phrase. The steps live in
:mod:`avito_harness.judge.steps`, one module per subject; this module loads them all.
"""

from __future__ import annotations

from avito_harness.judge.environment import EMBEDDED_GROUP, SHORT_WINDOWS, USER
from avito_harness.judge.steps import MODULES
from avito_harness.judge.steps.harness import Harness

__all__ = ["EMBEDDED_GROUP", "Harness", "SHORT_WINDOWS", "USER"]

pytest_plugins = list(MODULES)
