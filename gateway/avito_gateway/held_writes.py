"""Writes the store refused after something already happened outside the process (a post that landed at Avito,
a message n8n accepted): kept in memory, in order, and written when the store takes writes again.

A replica whose database stopped mid-send still knows what it posted; dropping that knowledge is how a retry
would post the same text a second time. While a write is held, this process answers from it (a repeat of the
key gets the same answer) and never redoes the work it records.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from avito_gateway.background import Periodic
from avito_gateway.clock import Clock
from avito_gateway.errors import StorageError
from avito_gateway.logsafe import safe

__all__ = ["HeldWrites"]

log = logging.getLogger("avito_gateway.store")
#: Seconds (on the gateway's clock) between attempts while the store refuses: doubling, capped.
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0
#: How often (real seconds) the background task looks whether a retry is due.
LOOK_EVERY = 0.5


class HeldWrites:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._writes: OrderedDict[str, Callable[[], Awaitable[object]]] = OrderedDict()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._periodic = Periodic("gateway-held-writes", LOOK_EVERY, self.flush)

    def hold(self, key: str, write: Callable[[], Awaitable[object]]) -> None:
        """Keep ``write`` (it raises StorageError while the store refuses) until it succeeds; a later write with
        the same key replaces it."""
        if not self._writes:
            self._retry_at = self.clock.now() + BACKOFF_MIN
        self._writes[key] = write
        log.warning("storage refused a write after the fact: %s held in memory until it takes writes again", safe(key))

    def drop(self, key: str) -> None:
        """The write is no longer needed (a newer one was done)."""
        self._writes.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._writes

    def __len__(self) -> int:
        return len(self._writes)

    async def flush(self, *, now_or_never: bool = False) -> None:
        """Write what is held, oldest first, if a retry is due (``now_or_never``: whatever the backoff, the last try
        before stopping); stops at the first refusal."""
        if not self._writes or (self.clock.now() < self._retry_at and not now_or_never):
            return
        for key, write in list(self._writes.items()):
            try:
                await write()
            except StorageError as exc:
                self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
                self._retry_at = self.clock.now() + self._backoff
                log.warning("held writes: %d still waiting, next try in %.0f s (%s)", len(self._writes),
                            self._backoff, safe(exc.message))
                return
            if self._writes.get(key) is write:
                del self._writes[key]
        self._backoff = 0.0

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        if self._writes:
            log.error("stopping with %d write(s) the store never took: %s", len(self._writes),
                      safe(", ".join(self._writes)))
