"""What the store hands back: plain records, decoded from their rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["BEHIND_HEAD", "IdempotencyRecord", "InboundRecord", "KeyClaim", "OutboxItem"]

#: ``next_attempt_at`` of an outbox item waiting behind its chat's head (far beyond any real time).
BEHIND_HEAD = 1e15


@dataclass
class InboundRecord:
    id: int
    account: int
    message_id: str
    chat_id: str
    author_id: int | None
    kind: str
    received_at: float
    raw: dict[str, Any]

    @classmethod
    def from_row(cls, r: Any) -> InboundRecord:
        return cls(r["id"], r["account"], r["message_id"], r["chat_id"], r["author_id"], r["kind"], r["received_at"],
                   json.loads(r["raw"]))


@dataclass
class OutboxItem:
    id: int
    inbound_id: int
    chat_id: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    payload: dict[str, Any] | None
    created_at: float
    delivered_at: float | None
    raw: dict[str, Any]
    account: int = 0
    claimed_by: str | None = None  # the replica forwarding it now
    claimed_until: float | None = None
    #: The fencing token of the claim this copy came with: the store takes its marks only with the current one.
    generation: int = 0

    @classmethod
    def from_row(cls, row: Any) -> OutboxItem:
        return cls(
            row["id"], row["inbound_id"], row["chat_id"], row["status"], row["attempts"], row["next_attempt_at"],
            row["last_error"], json.loads(row["payload"]) if row["payload"] else None, row["created_at"],
            row["delivered_at"], json.loads(row["raw"]), row["account"], row["claimed_by"], row["claimed_until"],
            row["claim_generation"],
        )

    @property
    def behind_head(self) -> bool:
        """Waiting for an older item of its chat."""
        return self.next_attempt_at >= BEHIND_HEAD

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chat_id": self.chat_id,
            "status": self.status,
            "attempts": self.attempts,
            # an item waiting for its chat's head is due once the head is done (shown as when it came, as ever)
            "next_attempt_at": self.created_at if self.behind_head else self.next_attempt_at,
            "behind_chat_head": self.behind_head,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "delivered_at": self.delivered_at,
            "message_id": self.raw.get("payload", {}).get("value", {}).get("id"),
            "claimed_by": self.claimed_by,
            "claimed_until": self.claimed_until,
            "generation": self.generation,
        }


@dataclass
class IdempotencyRecord:
    fingerprint: str
    status: int | None
    response: dict[str, Any] | None
    claimed_until: float | None
    generation: int = 0

    @classmethod
    def from_row(cls, r: Any) -> IdempotencyRecord:
        return cls(r["fingerprint"], r["status"], json.loads(r["response"]) if r["response"] else None,
                   r["claimed_until"], r["generation"])


@dataclass(frozen=True)
class KeyClaim:
    """This process holds an idempotency key: its fencing ``generation``; ``taken_over``: an earlier holder left
    it unfinished (it died, paused past its lease, or did not learn whether its post landed), so the chat must be
    read before anything is posted."""

    generation: int
    taken_over: bool
