"""What the fake n8n received: every webhook call, with time and headers."""

from __future__ import annotations

import itertools
import threading
import time as _perf
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["N8nState", "Received"]


@dataclass
class Received:
    id: int
    path: str
    time: float
    headers: dict[str, str]
    body: Any
    test_mode: bool = False
    schema_errors: list[str] | None = None  # for /webhook/avito: the normalized-message contract's verdict
    extra_fields: list[str] | None = None  # fields the contract does not name: information, not a violation
    seen_at: float = field(default_factory=_perf.perf_counter)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class N8nState:
    """Registered webhook paths and everything POSTed to them (thread-safe, waitable)."""

    def __init__(self, paths: tuple[str, ...] = ("avito",)) -> None:
        self._initial = tuple(paths)
        self._cond = threading.Condition()
        self.paths: set[str] = set(paths)
        self._items: list[Received] = []
        self._ids = itertools.count(1)

    def register(self, path: str) -> None:
        with self._cond:
            self.paths.add(path.strip("/"))

    def record(self, path: str, now: float, headers: dict[str, str], body: Any, test_mode: bool,
               schema_errors: list[str] | None = None, extra_fields: list[str] | None = None) -> Received:
        with self._cond:
            item = Received(next(self._ids), path, now, headers, body, test_mode, schema_errors, extra_fields)
            self._items.append(item)
            self._cond.notify_all()
            return item

    def received(self, path: str | None = None, since: int = 0) -> list[Received]:
        with self._cond:
            return [r for r in self._items if r.id > since and (path is None or r.path == path)]

    def wait_for(self, count: int, timeout: float, path: str | None = None, since: int = 0) -> list[Received]:
        """Block (real time, bounded) until ``count`` matching calls arrived; returns what is there."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received(path, since)) >= count, timeout)
            return self.received(path, since)

    def invalid(self) -> list[Received]:
        """What arrived at the normalized-message path but broke its contract."""
        with self._cond:
            return [r for r in self._items if r.schema_errors]

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def reset(self) -> None:
        with self._cond:
            self._items.clear()
            self._ids = itertools.count(1)
            self.paths = set(self._initial)
