"""The flows' event log: what happened, in order, waitable (real time, bounded)."""

from __future__ import annotations

import itertools
import threading
import time as _perf
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FlowEvent", "FlowLog"]


@dataclass
class FlowEvent:
    id: int
    kind: str
    time: float
    data: dict[str, Any]
    seen_at: float = field(default_factory=_perf.perf_counter)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FlowLog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[FlowEvent] = []
        self._ids = itertools.count(1)

    def add(self, kind: str, time: float, **data: Any) -> FlowEvent:
        with self._cond:
            event = FlowEvent(next(self._ids), kind, time, data)
            self._events.append(event)
            self._cond.notify_all()
            return event

    def events(self, kind: str | None = None, since: int = 0) -> list[FlowEvent]:
        with self._cond:
            return [e for e in self._events if e.id > since and (kind is None or e.kind == kind)]

    def wait_for(self, kind: str, count: int, timeout: float, since: int = 0) -> list[FlowEvent]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.events(kind, since)) >= count, timeout)
            return self.events(kind, since)

    def reset(self) -> None:
        with self._cond:
            self._events.clear()
            self._ids = itertools.count(1)
