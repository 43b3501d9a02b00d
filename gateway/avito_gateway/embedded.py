"""The gateway as the acceptance run embeds it: in-process, on the harness's virtual clock.

Published as the entry point ``avito_harness.embedded_gateway`` / ``ours``: the harness finds it by that
name and never imports this package (the two meet over HTTP, contracts, and this one factory). Another
Python gateway can register its own factory under the same group to be embedded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from avito_gateway.app import create_app
from avito_gateway.clock import Clock
from avito_gateway.settings import GatewaySettings

__all__ = ["create_embedded"]


def create_embedded(settings: Mapping[str, Any], clock: Clock) -> Any:
    """An ASGI app from settings named as the deployment's variables (lower case), on ``clock``."""
    return create_app(GatewaySettings(_env_file=None, **dict(settings)), clock=clock)
