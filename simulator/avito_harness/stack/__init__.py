"""Running things: the fakes in this process (:mod:`.local`), elsewhere (:mod:`.remote`), as containers
(:mod:`.containers`), a gateway as a process (:mod:`.gateway_process`), an ASGI app on loopback (:mod:`.serve`),
and the control clients of the fakes (:mod:`.control_clients`)."""

from __future__ import annotations

from typing import Any

__all__ = ["Stack", "StackError"]


def __getattr__(name: str) -> Any:
    """``avito_harness.stack.Stack`` as before, imported only when asked for: ``serve avito`` starts without
    loading every fake."""
    if name in __all__:
        from avito_harness.stack import local

        return getattr(local, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
