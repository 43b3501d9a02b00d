"""Where the project's contracts live (the source tree, or a container that copies it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["contracts_dir"]


def contracts_dir() -> Path:
    """``$AVITO_HARNESS_CONTRACTS`` if set, else ``contracts/`` beside the ``simulator`` package."""
    override = os.environ.get("AVITO_HARNESS_CONTRACTS")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "contracts"
