"""Retention: delivered items, raw webhooks, refusals, sends and idempotency keys older than
``RETENTION_SECONDS`` are deleted and the file's space is given back, so the database stays bounded."""

from __future__ import annotations

import logging

from avito_gateway.background import Periodic
from avito_gateway.clock import Clock
from avito_gateway.errors import StorageError
from avito_gateway.logsafe import safe
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store

__all__ = ["Retention"]

log = logging.getLogger("avito_gateway.retention")
#: How often (real seconds) the loop looks at the clock; the sweep itself runs every RETENTION_SWEEP_INTERVAL
#: seconds of the gateway's clock, so a virtual clock in tests triggers it too.
LOOK_EVERY = 1.0


class Retention:
    def __init__(self, settings: GatewaySettings, store: Store, clock: Clock) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self._next_at = clock.now() + settings.retention_sweep_interval
        self.periodic = Periodic("gateway-retention", min(LOOK_EVERY, settings.retention_sweep_interval), self._due)

    async def sweep(self) -> dict[str, int]:
        removed = await self.store.sweep(self.clock.now(), self.settings.retention_seconds, self.settings.rejected_keep)
        if any(removed.values()):
            log.info("retention: removed %s", removed)
        return removed

    async def _due(self) -> None:
        if self.clock.now() < self._next_at:
            return
        self._next_at = self.clock.now() + self.settings.retention_sweep_interval
        try:
            await self.sweep()
        except StorageError as exc:
            log.warning("retention sweep failed: %s", safe(exc.message))
