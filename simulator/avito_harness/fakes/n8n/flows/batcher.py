"""Universal Batcher: one client's messages within the window become one batch (window on the clock).

The first message of a client opens a batch and schedules its close at
``opened + window`` on the injectable clock; messages of the same client and
chat arriving before then join it, in arrival order. A message after the
close opens a new batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avito_harness.fakes.clock import Clock

__all__ = ["Batch", "Batcher", "batch_key"]

Key = tuple[str, str, str, str]


def batch_key(tenant_id: str, message: dict[str, Any]) -> Key:
    return (tenant_id, message["channel"], message["external_user_id"], message["external_chat_id"])


@dataclass
class Batch:
    key: Key
    opened_at: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    closed_at: float | None = None

    @property
    def tenant_id(self) -> str:
        return self.key[0]

    def text(self) -> str:
        return "\n".join(m["text"] for m in self.messages if m["text"].strip())


class Batcher:
    def __init__(self, clock: Clock, on_batch: Callable[[Batch], None]) -> None:
        self.clock, self.on_batch = clock, on_batch
        self._lock = threading.Lock()
        self._open: dict[Key, Batch] = {}

    def add(self, key: Key, message: dict[str, Any], window: float) -> Batch:
        with self._lock:
            batch = self._open.get(key)
            if batch is None:
                batch = Batch(key, self.clock.now())
                self._open[key] = batch
                self.clock.call_at(batch.opened_at + window, lambda: self._close(batch), name="batch-window")
            batch.messages.append(message)
            return batch

    def _close(self, batch: Batch) -> None:
        with self._lock:
            if self._open.get(batch.key) is not batch:
                return
            del self._open[batch.key]
            batch.closed_at = self.clock.now()
        self.on_batch(batch)

    def open_batches(self) -> list[Batch]:
        with self._lock:
            return list(self._open.values())

    def reset(self) -> None:
        with self._lock:
            self._open.clear()
