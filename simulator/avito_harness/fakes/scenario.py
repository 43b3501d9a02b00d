"""Scenarios: fault rules, delivery behaviour and rate limits as data (YAML or JSON).

A scenario reproduces an incident: load it at start (``avito-harness sim
--scenario FILE``) or through ``POST /_sim/scenario``, export the running
state with ``GET /_sim/scenario`` and attach the file to a bug report::

    version: 1
    seed: 42                      # optional: reset with this seed first
    clock: {frozen: true, now: 1764590400}
    avito:
      faults:
        - {preset: rate_limited_429_retry_after, route: "POST /messenger/v1/*", times: 2}
      accounts:
        - user_id: 100000001
          settings: {auth_error_status: 403, rate_limits: {per_minute: 60}, delivery: {retries: 2}}
    n8n:
      faults:
        - {route: "POST /webhook/*", status: 500, times: 3}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from avito_harness.fakes.clock import Clock

__all__ = ["SERVICES", "apply_common", "read_scenario", "section", "validate_scenario", "dump_scenario"]

SERVICES = ("avito", "n8n", "stt")
TOP_KEYS = {"version", "description", "seed", "clock", *SERVICES}


def read_scenario(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON scenario file (JSON is valid YAML)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML/JSON: {exc}") from None
    validate_scenario(doc)
    result: dict[str, Any] = doc
    return result


def dump_scenario(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def validate_scenario(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise ValueError("a scenario is a mapping with keys like seed, clock, avito, n8n")
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise ValueError(f"unknown scenario key(s): {', '.join(sorted(unknown))}")
    if doc.get("version", 1) != 1:
        raise ValueError("only scenario version 1 is known")
    for name in SERVICES:
        if name in doc and not isinstance(doc[name], dict):
            raise ValueError(f"{name}: must be a mapping")
    clock = doc.get("clock")
    if clock is not None and not isinstance(clock, dict):
        raise ValueError("clock: must be a mapping like {frozen: true, now: 1764590400}")


def section(doc: dict[str, Any], service: str) -> dict[str, Any]:
    value = doc.get(service) or {}
    return dict(value)


def apply_common(doc: dict[str, Any], clock: Clock, reset: Callable[[int | None], None]) -> None:
    """Seed (a reset with that seed) and clock settings shared by every fake."""
    validate_scenario(doc)
    if "seed" in doc:
        reset(int(doc["seed"]))
    settings = doc.get("clock") or {}
    frozen = settings.get("frozen")
    now = settings.get("now")
    if frozen:
        clock.freeze(float(now) if now is not None else None)
    elif frozen is False:
        clock.unfreeze()
    if now is not None and not frozen:
        clock.set_time(float(now))
