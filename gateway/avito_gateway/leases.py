"""A claim this process holds in the shared store (an idempotency key, an outbox item), as a fenced lease.

Kleppmann's fencing tokens: every claim carries a generation, and the store takes the holder's writes only with
the generation it claimed. The lease is renewed while the work runs; before anything leaves the process (a
post to Avito, a forward to n8n) :meth:`Lease.ensure` makes sure the claim is still ours for longer than that
post may take, so whoever takes over after the lease ran out finds the post finished (or given up) and can
read the chat. A holder that learns it lost the claim stops (:class:`ClaimLost`) and never posts after that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from avito_gateway.clock import Clock

__all__ = ["ClaimLost", "Lease", "RENEW_AT", "SAFETY_MARGIN"]

#: A lease is renewed once less than this share of it is left.
RENEW_AT = 2 / 3
#: Seconds a lease must outlast a post by (clock differences between replicas, the store's own write).
SAFETY_MARGIN = 1.0


class ClaimLost(Exception):
    """Another holder took the claim over: this process must not post or mark anything for it."""


@dataclass
class Lease:
    """``renew(until)`` extends the claim in the store and says whether it is still ours (a StorageError
    leaves the lease as it was: it may still lapse)."""

    generation: int
    until: float
    seconds: float
    clock: Clock
    renew: Callable[[float], Awaitable[bool]]
    lost: bool = field(default=False)

    def due(self) -> bool:
        """Time to renew."""
        return self.until - self.clock.now() < self.seconds * RENEW_AT

    def extended(self, until: float, still_ours: bool) -> None:
        """The outcome of a renewal (done here or in a batch by the holder)."""
        if still_ours:
            self.until = max(self.until, until)
        else:
            self.lost = True

    async def keep(self) -> None:
        """Renew now (raises :class:`ClaimLost`, or StorageError when the store cannot say)."""
        until = self.clock.now() + self.seconds
        self.extended(until, await self.renew(until))
        if self.lost:
            raise ClaimLost()

    async def ensure(self, needed: float) -> float:
        """Before a post that may take ``needed`` seconds: the claim is ours until after it would have ended.
        Returns the seconds the post may take (its timeout). Raises :class:`ClaimLost`, or StorageError when
        the store cannot confirm the claim (then nothing may be posted)."""
        if self.lost:
            raise ClaimLost()
        now = self.clock.now()
        if self.until - now < needed + SAFETY_MARGIN:
            until = now + max(self.seconds, needed + SAFETY_MARGIN)
            self.extended(until, await self.renew(until))
            if self.lost:
                raise ClaimLost()
        return needed
