"""One Avito account's behaviour: items, customers, chats, messages, media, subscriptions.

Plain arguments in, data out, Avito errors raised; no HTTP here. Every new
message in a chat is handed to ``on_message`` (the webhook dispatcher).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from avito_harness.fakes.avito.chat_order import ChatOrder
from avito_harness.fakes.avito.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ValidationFailedError,
)
from avito_harness.fakes.avito.models import (
    Account,
    AccountSettings,
    Chat,
    ChatType,
    Customer,
    Item,
    Message,
    Subscription,
    rfc3339,
)
from avito_harness.fakes.clock import Clock

__all__ = ["AvitoState", "MediaLinks", "CHAT_ID_ALPHABET", "DELETE_WINDOW", "SYSTEM_AUTHOR"]

CHAT_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~_"
#: Avito lets a sender delete a message for one hour after sending it.
DELETE_WINDOW = 3600
#: Avito's own system/chat-bot messages carry author_id 0.
SYSTEM_AUTHOR = 0
MAX_TEXT = 1000


class MediaLinks(Protocol):
    """Where the simulator serves media (it knows its own public URL)."""

    def image_sizes(self, key: str) -> dict[str, str]: ...

    def image_url(self, key: str, size: str) -> str: ...

    def register_voice(self, user_id: int, voice_id: str, text: str) -> None: ...

    def voice_link(self, user_id: int, voice_id: str) -> str: ...


#: Chats whose rendering a state keeps for its pages (see :meth:`AvitoState.render_chats`).
RENDERINGS_KEPT = 2_000


class AvitoState:
    """Everything one Avito account owns. Thread-safe (one lock)."""

    def __init__(
        self,
        account: Account,
        *,
        clock: Clock,
        rng: random.Random,
        media: MediaLinks,
        settings: AccountSettings | None = None,
        on_message: Callable[[AvitoState, Message, Chat], Any] | None = None,
        max_messages: int = 10_000,
    ) -> None:
        self.account = account
        self.max_messages = max_messages
        self.settings = settings or AccountSettings()
        self.clock = clock
        self.rng = rng
        self.media = media
        self.on_message = on_message
        self.lock = threading.RLock()
        self.items: dict[int, Item] = {}
        self.customers: dict[int, Customer] = {}
        self.chats: dict[str, Chat] = {}
        self.images: dict[str, dict[str, str]] = {}
        self.voices: dict[str, str] = {}
        self.blacklist: list[dict[str, Any]] = []
        self.subscriptions: list[Subscription] = []
        self._activity = itertools.count(1)
        self.order = ChatOrder()
        self._renderings: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # see render_chats

    @property
    def user_id(self) -> int:
        return self.account.user_id

    # --- ids ---------------------------------------------------------------
    def _hex(self, n: int = 32) -> str:
        """``n`` (even) random hex digits: the same as ``f"{bits:0{n}x}"``, at a third of its cost."""
        return self.rng.getrandbits(4 * n).to_bytes(n // 2, "big").hex()

    def _chat_id(self, chat_type: str) -> str:
        return f"{chat_type}-" + "".join(self.rng.choice(CHAT_ID_ALPHABET) for _ in range(22))

    def _now(self) -> int:
        return int(self.clock.now())

    # --- directory ---------------------------------------------------------
    def add_item(self, title: str, price: int, *, item_id: int | None = None, **extra: Any) -> Item:
        with self.lock:
            item = Item(id=item_id or self.rng.randint(10**9, 10**10 - 1), title=title, price=price, **extra)
            self.items[item.id] = item
            return item

    def add_customer(self, name: str, *, customer_id: int | None = None) -> Customer:
        with self.lock:
            customer = Customer(id=customer_id or self.rng.randint(10**8, 10**9 - 1), name=name)
            if customer.id == self.user_id or customer.id == SYSTEM_AUTHOR:
                raise ValidationFailedError({"customer_id": "must differ from the account id and 0"})
            self.customers[customer.id] = customer
            return customer

    def create_chat(
        self, customer_id: int, *, item_id: int | None = None, chat_type: ChatType | None = None,
        chat_id: str | None = None,
    ) -> Chat:
        """A new chat; ``chat_id``: the id it had elsewhere (a recorded incident's chat)."""
        with self.lock:
            if chat_id is not None and chat_id in self.chats:
                raise ValidationFailedError({"chat_id": f"chat {chat_id} exists"})
            if customer_id not in self.customers:
                raise NotFoundError(f"Customer {customer_id} not found")
            if item_id is not None and item_id not in self.items:
                raise NotFoundError(f"Item {item_id} not found")
            kind: ChatType = chat_type or ("u2i" if item_id is not None else "u2u")
            if kind == "u2i" and item_id is None:
                raise ValidationFailedError({"item_id": "a u2i chat is about an item"})
            now = self._now()
            chat = Chat(chat_id or self._chat_id(kind), kind, customer_id, item_id if kind == "u2i" else None, now, now)
            chat.activity = next(self._activity)
            self.chats[chat.id] = chat
            self.order.touch(chat)
            return chat

    def chat(self, chat_id: str) -> Chat:
        with self.lock:
            chat = self.chats.get(chat_id)
            if chat is None:
                raise NotFoundError("Chat not found")
            return chat

    # --- reading -----------------------------------------------------------
    def list_chats(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        chat_types: Iterable[str] = ("u2i",),
        unread_only: bool = False,
        item_ids: Iterable[int] | None = None,
    ) -> list[Chat]:
        """Chats newest update first (Avito's order is undocumented; this is what clients assume)."""
        types, items = set(chat_types), set(item_ids or ())
        page: list[Chat] = []
        if limit <= 0:
            return page
        with self.lock:  # walks the order index from the newest: a page costs its offset and length
            for chat_id in self.order.newest_first():
                c = self.chats[chat_id]
                if (c.chat_type in types and (not items or c.item_id in items)
                        and (not unread_only or self.has_unread(c))):
                    if offset:
                        offset -= 1
                        continue
                    page.append(c)
                    if len(page) >= limit:
                        break
        return page

    def has_unread(self, chat: Chat) -> bool:
        return any(not m.is_read for m in chat.messages if m.author_id != self.user_id)

    def list_messages(self, chat_id: str, *, limit: int = 100, offset: int = 0) -> list[Message]:
        """Messages newest first. Listing does not mark anything read (Avito says so)."""
        with self.lock:
            messages = self.chat(chat_id).messages
            end = max(0, len(messages) - offset)  # the page only: a long chat is not copied whole per call
            return messages[max(0, end - limit) : end][::-1]

    # --- writing -----------------------------------------------------------
    def _append(self, chat: Chat, author_id: int, kind: str, content: dict[str, Any], **extra: Any) -> Message:
        with self.lock:
            now = self._now()
            mine = author_id == self.user_id
            message = Message(
                id=self._hex(),
                chat_id=chat.id,
                author_id=author_id,
                created=now,
                type=kind,
                content=content,
                is_read=mine,
                **extra,
            )
            chat.messages.append(message)
            if len(chat.messages) > self.max_messages + self.max_messages // 10:  # trimmed in steps, not per message
                del chat.messages[: len(chat.messages) - self.max_messages]
            chat.updated, chat.activity = now, next(self._activity)
            self.order.touch(chat)
        if self.on_message is not None:
            self.on_message(self, message, chat)
        return message

    def restore_message(self, chat_id: str, *, message_id: str, author_id: int, kind: str, content: dict[str, Any],
                        created: int) -> Message:
        """A message as a recording holds it (a replay's history): its id, author and time kept, in time order, no
        webhook (it happened before); a message the chat holds already is left as it is."""
        with self.lock:
            chat = self.chat(chat_id)
            for existing in chat.messages:
                if existing.id == message_id:
                    return existing
            message = Message(id=message_id, chat_id=chat.id, author_id=author_id, created=created, type=kind,
                              content=content, is_read=True)
            place = len(chat.messages)
            while place > 0 and chat.messages[place - 1].created > created:
                place -= 1
            chat.messages.insert(place, message)
            if created >= chat.updated:
                chat.updated, chat.activity = created, next(self._activity)
                self.order.touch(chat)
        return message

    def send_text(self, chat_id: str, text: str) -> Message:
        if not text.strip():
            raise ValidationFailedError({"message.text": "must not be empty"})
        if len(text) > MAX_TEXT:
            raise ValidationFailedError({"message.text": f"must be at most {MAX_TEXT} characters"})
        return self._append(self.chat(chat_id), self.user_id, "text", {"text": text})

    def upload_image(self, data: bytes) -> tuple[str, dict[str, str]]:
        with self.lock:
            image_id = f"{self.rng.randint(10**9, 10**10 - 1)}.{self._hex(20)}"
            sizes = self.media.image_sizes(image_id)
            self.images[image_id] = sizes
            return image_id, sizes

    def send_image(self, chat_id: str, image_id: str) -> Message:
        chat = self.chat(chat_id)
        with self.lock:
            sizes = self.images.get(image_id)
        if sizes is None:
            raise BadRequestError(f"Image {image_id} not found: upload it with uploadImages first")
        return self._append(chat, self.user_id, "image", {"image": {"sizes": dict(sizes)}})

    def mark_read(self, chat_id: str) -> None:
        """``chatRead``: every incoming message becomes read now."""
        with self.lock:
            chat, now = self.chat(chat_id), self._now()
            for m in chat.messages:
                if m.author_id != self.user_id and not m.is_read:
                    m.is_read, m.read = True, now

    def customer_reads(self, chat_id: str) -> None:
        """The customer opens the chat: our messages get ``read`` set."""
        with self.lock:
            chat, now = self.chat(chat_id), self._now()
            for m in chat.messages:
                if m.author_id == self.user_id and m.read is None:
                    m.read = now

    def delete_message(self, chat_id: str, message_id: str) -> None:
        with self.lock:
            chat = self.chat(chat_id)
            message = next((m for m in chat.messages if m.id == message_id), None)
            if message is None:
                raise NotFoundError("Message not found")
            if message.author_id != self.user_id:
                raise ForbiddenError("Only your own messages can be deleted")
            if message.type == "deleted":
                return
            if self._now() - message.created > DELETE_WINDOW:
                raise BadRequestError("A message can be deleted only within 1 hour of sending")
            message.type, message.content = "deleted", {}

    def voice_urls(self, voice_ids: list[str]) -> dict[str, str]:
        with self.lock:
            unknown = [v for v in voice_ids if v not in self.voices]
        if unknown:
            raise NotFoundError(f"Voice file(s) not found: {', '.join(unknown)}")
        return {v: self.media.voice_link(self.user_id, v) for v in voice_ids}

    def add_to_blacklist(self, users: list[dict[str, Any]]) -> None:
        with self.lock:
            self.blacklist.extend(users)

    # --- what the other side does (control API) ----------------------------
    def inject(self, chat_id: str, kind: str, *, author: str = "customer", **payload: Any) -> Message:
        """A message typed in the chat by the customer, by Avito (system) or by us elsewhere."""
        chat = self.chat(chat_id)
        author_id = {"customer": chat.customer_id, "system": SYSTEM_AUTHOR, "account": self.user_id}.get(author)
        if author_id is None:
            raise ValidationFailedError({"author": "one of customer, system, account"})
        if author == "system" or kind == "system":
            kind, author_id = "system", SYSTEM_AUTHOR
        content = self._content(kind, payload)
        extra: dict[str, Any] = {}
        quote_id = payload.get("quote_id")
        if quote_id:
            quoted = next((m for m in chat.messages if m.id == quote_id), None)
            if quoted is None:
                raise NotFoundError(f"Quoted message {quote_id} not found")
            extra["quote"] = {
                "id": quoted.id,
                "author_id": quoted.author_id,
                "created": quoted.created,
                "type": quoted.type,
                "content": quoted.content,
            }
        return self._append(chat, author_id, kind, content, **extra)

    def _content(self, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        if kind == "text":
            text = p.get("text")
            if not isinstance(text, str) or not text:
                raise ValidationFailedError({"text": "required for a text message"})
            return {"text": text}
        if kind == "system":
            text = p.get("text") or "[Системное сообщение] Покупатель посмотрел ваш номер телефона"
            return {"text": text, "flow_id": p.get("flow_id") or "sbc_seller_notification"}
        if kind == "image":
            return {"image": {"sizes": self.media.image_sizes(self._hex(16))}}
        if kind == "voice":
            words = p.get("text")
            if not isinstance(words, str) or not words.strip():
                raise ValidationFailedError({"text": "a voice message needs the words it speaks"})
            voice_id = self._hex(24)
            with self.lock:
                self.voices[voice_id] = words
            self.media.register_voice(self.user_id, voice_id, words)
            return {"voice": {"voice_id": voice_id}}
        if kind == "link":
            url = p.get("url") or "https://example.com/"
            return {"link": {"text": p.get("text") or url, "url": url, "preview": None}}
        if kind == "item":
            item_id = p.get("item_id")
            item = self.items.get(int(item_id)) if item_id is not None else None
            if item is None:
                raise ValidationFailedError({"item_id": "an item of this account"})
            image = self.media.image_url(f"item-{item.id}", "140x105")
            return {
                "item": {"title": item.title, "item_url": item.url, "image_url": image, "price_string": item.price_string}
            }
        if kind == "location":
            return {
                "location": {
                    "lat": float(p.get("lat", 55.751244)),
                    "lon": float(p.get("lon", 37.618423)),
                    "kind": p.get("kind", "street"),
                    "text": p.get("text", "Москва, Тверская улица"),
                    "title": p.get("title", "Тверская улица"),
                }
            }
        if kind in ("call",):
            return {"call": {"status": "missed", "target_user_id": self.user_id}}
        raise ValidationFailedError(
            {"type": "one of text, image, voice, link, item, location, call, system"}
        )

    # --- rendering (Avito's JSON) -----------------------------------------
    def render_message(self, m: Message) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": m.id,
            "author_id": m.author_id,
            "created": m.created,
            "direction": "out" if m.author_id == self.user_id else "in",
            "type": m.type,
            "content": m.content,
            "is_read": m.is_read,
            "read": m.read,
        }
        if m.quote is not None:
            out["quote"] = m.quote
        return out

    def render_sent(self, m: Message) -> dict[str, Any]:
        """The answer to a send, without read flags.

        Avito documents ``author_id`` only for image sends, but client libraries
        (e.g. avito-api) parse text-send answers with the same model and require
        it, so both carry it.
        """
        return {
            "id": m.id,
            "author_id": m.author_id,
            "created": m.created,
            "direction": "out",
            "type": m.type,
            "content": m.content,
        }

    def render_chats(self, chats: list[Chat]) -> list[dict[str, Any]]:
        """A page of chats, each as :meth:`render_chat` makes it. A client asks for the same page over and over
        while few of its chats change, so a chat's rendering is kept (up to ``RENDERINGS_KEPT`` chats) with what it
        shows: its update, the last message (its kind too: a deletion changes it in place), the account's name, the
        item and customer (never changed, only replaced) and the media base (in the customer's avatar link). The
        answer is built anew when any of them differs. Within a page, the seller's ``users`` entry, the same in
        every chat of one item, is built once per item."""
        sellers: dict[int | None, dict[str, Any]] = {}
        kept = self._renderings
        page = []
        for c in chats:
            last = c.messages[-1] if c.messages else None
            shown = (c.updated, c.activity, last, last and last.type, self.account.name,
                     None if c.item_id is None else self.items.get(c.item_id),
                     self.customers.get(c.customer_id),
                     self.media.image_url(f"avatar-{c.customer_id}", "140x105"))
            found = kept.get(c.id)
            if found is None or found[0] != shown:
                if len(kept) >= RENDERINGS_KEPT:
                    kept.clear()
                found = kept[c.id] = (shown, self.render_chat(c, sellers))
            page.append(found[1])
        return page

    def render_chat(self, c: Chat, sellers: dict[int | None, dict[str, Any]] | None = None) -> dict[str, Any]:
        """``sellers``: the seller's entries already built for this page, by item (see :meth:`render_chats`)."""
        customer = self.customers[c.customer_id]
        out: dict[str, Any] = {"id": c.id, "created": c.created, "updated": c.updated}
        if c.item_id is not None:
            item = self.items[c.item_id]
            out["context"] = {
                "type": "item",
                "value": {
                    "id": item.id,
                    "title": item.title,
                    "url": item.url,
                    "price_string": item.price_string,
                    "status_id": item.status_id,
                    "user_id": self.user_id,
                    "images": {
                        "count": item.image_count,
                        "main": {"140x105": self.media.image_url(f"item-{item.id}", "140x105")},
                    },
                    "location": {"title": item.city, "lat": 55.75, "lon": 37.61},
                },
            }
        seller = None if sellers is None else sellers.get(c.item_id)
        if seller is None:
            seller = self._user(self.user_id, self.account.name, c.item_id)
            if sellers is not None:
                sellers[c.item_id] = seller
        out["users"] = [seller, self._user(customer.id, customer.name, c.item_id)]
        if c.messages:
            last = c.messages[-1]
            out["last_message"] = {
                "id": last.id,
                "author_id": last.author_id,
                "created": last.created,
                "content": last.content,
                "type": last.type,
                "direction": "out" if last.author_id == self.user_id else "in",
            }
        return out

    def _user(self, user_id: int, name: str, item_id: int | None) -> dict[str, Any]:
        avatar = self.media.image_url(f"avatar-{user_id}", "140x105")
        profile: dict[str, Any] = {
            "user_id": user_id,
            "url": f"https://www.avito.ru/user/sim{user_id:x}/profile",
            "avatar": {"default": avatar, "images": {"128x128": avatar}},
        }
        if item_id is not None:
            profile["item_id"] = item_id
        return {"id": user_id, "name": name, "public_user_profile": profile}

    def render_webhook_value(self, m: Message, chat: Chat) -> dict[str, Any]:
        """``payload.value`` of a v3 webhook, fields in Avito's order (no ``direction``)."""
        return {
            "id": m.id,
            "chat_id": chat.id,
            "user_id": self.user_id,
            "author_id": m.author_id,
            "created": m.created,
            "type": m.type,
            "chat_type": chat.chat_type,
            "content": m.content,
            "item_id": chat.item_id,
            "published_at": rfc3339(m.created),
        }
