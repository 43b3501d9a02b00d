"""Tenant Resolver: tenant_id from channel + external_user_id, with an explicit rule for unknown clients."""

from __future__ import annotations

from typing import Any

from avito_harness.fakes.n8n.flows.bat_in import Rejected

__all__ = ["resolve_tenant"]


def resolve_tenant(message: dict[str, Any], mapping: dict[str, str], default: str | None) -> str:
    """``mapping["avito:12345"]`` if present, else ``default``; with no default an unknown client is rejected."""
    key = f"{message['channel']}:{message['external_user_id']}"
    tenant = mapping.get(key, default)
    if tenant is None:
        raise Rejected(f"no tenant for {key} and no default tenant")
    return tenant
