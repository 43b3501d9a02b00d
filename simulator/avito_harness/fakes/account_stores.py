"""Per-account state, like moto's per-account backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from threading import RLock
from typing import Generic, TypeVar

__all__ = ["AccountStores"]

S = TypeVar("S")


class AccountStores(Generic[S]):
    """One ``S`` per Avito account (keyed by ``user_id``), behind one lock."""

    def __init__(self, factory: Callable[[int], S]) -> None:
        self._factory, self._lock = factory, RLock()
        self._items: dict[int, S] = {}

    def __getitem__(self, user_id: int) -> S:
        with self._lock:
            if user_id not in self._items:
                self._items[user_id] = self._factory(user_id)
            return self._items[user_id]

    def __contains__(self, user_id: object) -> bool:
        with self._lock:
            return user_id in self._items

    def __iter__(self) -> Iterator[int]:
        with self._lock:
            return iter(list(self._items))

    def get(self, user_id: int) -> S | None:
        return self._items.get(user_id)  # one dict lookup is atomic: no lock (every request asks)

    def values(self) -> list[S]:
        with self._lock:
            return list(self._items.values())

    def reset(self) -> None:
        with self._lock:
            self._items.clear()
