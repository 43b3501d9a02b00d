"""Posting to Avito chats, never twice.

When a post fails in a way that leaves its fate unknown (a timeout, a dropped connection, a 5xx), the chat's
latest messages are read to see whether it landed before anything is posted again; when the chat cannot be
read either, nothing is posted: after the retries the answer is :class:`SendOutcomeUnknownError`; when it can
be read and does not show the message, Avito's own failure (502, or 504 for no answer) is the answer. A send that
took over an idempotency key from a holder that did not finish (``check_first``) reads the chat before its
first post. A failure before the request left the gateway (no token, no connection) posted nothing and is
simply retried. Once Avito confirmed a post, its record is written, or held in memory while the store
refuses writes (the post is not undone, nor repeated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avito_gateway.avito_client import AvitoClient, Guard
from avito_gateway.clock import Clock, sleep
from avito_gateway.echoes import EchoBook
from avito_gateway.errors import (
    AvitoApiError,
    GatewayError,
    InvalidRequestError,
    SendOutcomeUnknownError,
    StorageError,
)
from avito_gateway.held_writes import HeldWrites
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store

__all__ = ["LANDED_WINDOW", "MAX_TEXT", "Posting", "Sender"]

MAX_TEXT = 1000
#: How much older (seconds, by Avito's clock) than the chat's newest message a message may be and still be our send.
LANDED_WINDOW = 120


@dataclass(frozen=True)
class Posting:
    """How a send may post: ``guard`` runs right before each post leaves (the idempotency key's fence);
    ``check_first``: an earlier holder of the key may have posted, read the chat before posting."""

    guard: Guard | None = None
    check_first: bool = False


class _Unreadable(Exception):
    """The chat (or our own records) could not be read: whether a post landed is not known."""


class Sender:
    """One account's sends."""

    def __init__(self, settings: GatewaySettings, store: Store, avito: AvitoClient, clock: Clock, echoes: EchoBook,
                 held: HeldWrites) -> None:
        self.settings, self.store, self.avito, self.clock, self.echoes = settings, store, avito, clock, echoes
        self.held = held

    def _backoff(self, attempt: int) -> float:
        return float(min(self.settings.retry_max_wait, self.settings.retry_min_wait * 2.0 ** attempt))

    async def send_text(self, chat_id: str, text: str, posting: Posting = Posting()) -> dict[str, Any]:
        """Post once; on an unknown outcome check the chat before trying again."""
        if not text.strip():
            raise InvalidRequestError("text must not be empty", details={"fields": {"text": "empty"}})
        if len(text) > MAX_TEXT:
            raise InvalidRequestError(f"text is longer than Avito's {MAX_TEXT} characters",
                                      details={"fields": {"text": f"{len(text)} characters"}})
        unknown = posting.check_first  # a post may be out there: the chat is read before the next one
        attempt = 0

        def same_text(m: dict[str, Any]) -> bool:
            return bool((m.get("content") or {}).get("text") == text)

        while True:
            try:
                if unknown:
                    landed = await self._landed(chat_id, same_text)
                    if landed is not None:
                        sent = landed
                        break
                    unknown = False
                await self.echoes.sending(chat_id, text)
                sent = await self.avito.send_text(chat_id, text, guard=posting.guard)
                break
            except AvitoApiError as exc:
                if not exc.before_request and not exc.may_have_posted:
                    raise  # refused: nothing was posted
                unknown = unknown or exc.may_have_posted
                if not exc.retryable or attempt >= self.settings.max_retries:
                    if not unknown:
                        raise
                    sent = await self._last_look(chat_id, same_text, exc)
                    break
            except _Unreadable as exc:
                if attempt >= self.settings.max_retries:
                    raise self._unknown(exc) from None
            except StorageError as exc:
                raise self._unknown(exc) if unknown else exc from None
            await sleep(self.clock, max(self._backoff(attempt), self.avito.tokens.retry_at() - self.clock.now()))
            attempt += 1
        await self._record(str(sent["id"]), chat_id, text)
        return sent

    async def _last_look(self, chat_id: str, ours: Callable[[dict[str, Any]], bool],
                         failure: AvitoApiError) -> dict[str, Any]:
        """After the last failed post: the message if the chat shows it landed; Avito's own failure (502/504) when
        the chat shows it did not; :class:`SendOutcomeUnknownError` only when the chat cannot be read."""
        try:
            landed = await self._landed(chat_id, ours)
        except _Unreadable as exc:
            raise self._unknown(failure if failure.message else exc) from None
        if landed is None:
            raise failure
        return landed

    def _unknown(self, cause: Exception) -> SendOutcomeUnknownError:
        reason = cause.message if isinstance(cause, GatewayError) else str(cause)
        return SendOutcomeUnknownError(
            f"the message may have been posted: Avito did not confirm it and the chat does not show it yet ({reason}); "
            "retry with the same Idempotency-Key (the gateway reads the chat before any new post), never a new one; "
            "without a key a retry may post it twice",
            details={"cause": cause.code if isinstance(cause, GatewayError) else "chat_unreadable"})

    async def _record(self, message_id: str, chat_id: str, text: str | None) -> None:
        """Our send, for echo recognition; held in memory while the store refuses."""
        now = self.clock.now()

        async def write() -> None:
            await self.store.record_sent(message_id, chat_id, text, now)

        try:
            await write()
        except StorageError:
            self.held.hold(f"sent:{message_id}", write)

    async def _landed(self, chat_id: str, ours: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """A message among the chat's latest that ``ours(message)`` recognises and that is not yet known as any
        send of ours or a reply typed in the app (None: not there). Raises :class:`_Unreadable`."""
        try:
            listing = await self.avito.list_messages(chat_id, limit=20)
        except GatewayError as exc:
            raise _Unreadable(exc.message) from None
        messages = [m for m in listing if isinstance(m, dict)]
        # Avito's clock, not ours: "recent" is measured from the chat's newest message, so a gateway whose clock
        # differs from Avito's still recognises its own send.
        newest = max((int(m.get("created") or 0) for m in messages), default=0)
        try:
            for m in messages:
                if (
                    m.get("direction") == "out"
                    and ours(m)
                    and int(m.get("created") or 0) >= newest - LANDED_WINDOW
                    and f"sent:{m.get('id')}" not in self.held
                    and not await self.store.is_our_send(str(m.get("id")))
                    and not await self.store.is_seller_reply(str(m.get("id")))
                ):
                    return m
        except StorageError as exc:
            raise _Unreadable(exc.message) from None
        return None

    async def send_image(self, chat_id: str, data: bytes, filename: str, content_type: str,
                         posting: Posting = Posting()) -> dict[str, Any]:
        """Upload, then post the image; a send that took over its key first looks for an image of ours in the
        chat that no send of ours recorded (the earlier holder's)."""
        if posting.check_first:
            try:
                landed = await self._landed(chat_id, lambda m: m.get("type") == "image")
            except _Unreadable as exc:
                raise self._unknown(exc) from None
            if landed is not None:
                await self._record(str(landed["id"]), chat_id, None)
                return landed
        image_id = await self.avito.upload_image(filename, data, content_type)
        sent = await self.avito.send_image(chat_id, image_id, guard=posting.guard)
        await self._record(str(sent["id"]), chat_id, None)
        return {**sent, "image_id": image_id}
