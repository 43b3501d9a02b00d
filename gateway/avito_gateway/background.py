"""Work the gateway does on its own, every few (real) seconds: one task, started with the app, stopped with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from avito_gateway.logsafe import safe

__all__ = ["Periodic"]

log = logging.getLogger("avito_gateway")


class Periodic:
    """Awaits ``tick()`` every ``every`` real seconds (the tick itself decides by the gateway's clock whether
    anything is due, so a virtual clock in tests drives it too); whatever one tick raises is logged and the
    next tick comes as usual."""

    def __init__(self, name: str, every: float, tick: Callable[[], Awaitable[object]]) -> None:
        self.name, self.every, self.tick = name, every, tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.tick()
            except Exception as exc:  # whatever one tick raised: the next one still comes
                log.warning("%s: %s", self.name, safe(repr(exc)))
