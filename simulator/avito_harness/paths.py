"""Where the project's data lives: inside the installed package (``importlib.resources``), never a source tree.

``contracts/`` and ``features/`` are top-level folders of the repository; the build maps them into the
wheel as ``avito_harness.contracts`` and ``avito_harness.features`` (one copy; an editable install maps the
same names onto the folders).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["contracts_dir", "features_dir", "workflows_dir"]


def _package_dir(package: str) -> Path:
    return Path(str(files(package)))


def contracts_dir() -> Path:
    """``$AVITO_HARNESS_CONTRACTS`` if set, else the contracts shipped with the package."""
    override = os.environ.get("AVITO_HARNESS_CONTRACTS")
    return Path(override) if override else _package_dir("avito_harness.contracts")


def features_dir() -> Path:
    """The harness's own .feature files (the five-stage rollout plan and the Avito errors)."""
    return _package_dir("avito_harness.features")


def workflows_dir() -> Path:
    """BatteryCRM's n8n workflows (n8n 2.x JSON): what an operator imports for rollout stages 2-4."""
    return _package_dir("avito_harness.workflows")
