"""Avito webhook -> the normalized message n8n receives (contracts/normalized-message.schema.json).

Pure functions: the chat (for the customer's name and the item) and the voice
link are fetched by the caller and passed in. ``timestamp`` is the message's
``created`` in UTC, written ``YYYY-MM-DDTHH:MM:SS`` (no offset) as SPEC shows;
``meta.created`` keeps the unix seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["SCHEMA_VERSION", "FORWARDED", "Kind", "classify", "normalize", "largest_image", "message_text"]

SCHEMA_VERSION = "1.0.0"
Kind = Literal["customer", "echo", "seller_reply", "system"]
#: What n8n gets: customers' messages, and replies the seller typed in the Avito app (so the CRM's history is
#: complete; n8n keeps them as operator rows and never lets them trigger the AI). Echoes of our own sends and
#: Avito's system messages are not forwarded.
FORWARDED: frozenset[str] = frozenset({"customer", "seller_reply"})
#: Types Avito documents as unsupported in the API: content is {}.
UNSUPPORTED = {"appCall", "file", "video"}


def classify(value: dict[str, Any], *, our_send: bool) -> Kind:
    """Who wrote it: the customer, Avito (system), or our account (an echo of our send or a reply typed in the app)."""
    author = value.get("author_id")
    if value.get("type") == "system" or author == 0:
        return "system"
    if author == value.get("user_id"):
        return "echo" if our_send else "seller_reply"
    return "customer"


def _size_area(size: str) -> int:
    try:
        w, h = size.lower().split("x")
        return int(w) * int(h)
    except ValueError:
        return 0


def largest_image(content: dict[str, Any]) -> str | None:
    sizes = (content.get("image") or {}).get("sizes") or {}
    if not isinstance(sizes, dict) or not sizes:
        return None
    best = max(sizes, key=_size_area)
    url = sizes[best]
    return url if isinstance(url, str) else None


def message_text(kind: str, content: dict[str, Any]) -> str:
    """The words of the message; "" when it has none (image, voice before transcription)."""
    if kind in ("text", "system"):
        return str(content.get("text") or "")
    if kind == "link":
        link = content.get("link") or {}
        return str(link.get("text") or link.get("url") or "")
    if kind == "item":
        item = content.get("item") or {}
        return " ".join(str(p) for p in (item.get("title"), item.get("item_url")) if p)
    if kind == "location":
        loc = content.get("location") or {}
        return str(loc.get("text") or loc.get("title") or "")
    return ""


def _client_name(chat: dict[str, Any] | None, author_id: Any) -> str | None:
    for user in (chat or {}).get("users") or []:
        if isinstance(user, dict) and user.get("id") == author_id and user.get("name"):
            return str(user["name"])
    return None


def _timestamp(created: Any) -> str:
    try:
        return datetime.fromtimestamp(int(created), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return "1970-01-01T00:00:00"


def normalize(
    webhook: dict[str, Any],
    *,
    chat: dict[str, Any] | None = None,
    voice_url: str | None = None,
    voice_url_expires_at: float | None = None,
) -> dict[str, Any]:
    """The normalized message; a reply the seller typed in the Avito app is marked ``meta.author_role: seller``."""
    value = webhook["payload"]["value"]
    kind = str(value.get("type") or "text")
    content = value.get("content") if isinstance(value.get("content"), dict) else {}
    image = largest_image(content) if kind == "image" else None
    item_id = value.get("item_id")
    if item_id is None:
        ctx = (chat or {}).get("context") or {}
        item_id = (ctx.get("value") or {}).get("id") if ctx.get("type") == "item" else None
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "external_message_id": str(value.get("id")),
        "ad_channel": "avito",
        "ad_id": f"item_{item_id}" if item_id is not None else None,
        "item_id": item_id,
        "original_media_type": kind,
        "chat_type": value.get("chat_type"),
        "user_id": value.get("user_id"),
        "author_role": "seller" if value.get("author_id") == value.get("user_id") else "customer",
        "created": value.get("created"),
        "raw": webhook,
    }
    if kind == "voice":
        meta["voice_id"] = (content.get("voice") or {}).get("voice_id")
        meta["voice_url_expires_at"] = voice_url_expires_at
    if kind in UNSUPPORTED:
        meta["unsupported"] = True
    return {
        "channel": "avito",
        "external_user_id": str(value.get("author_id")),
        "external_chat_id": str(value.get("chat_id")),
        "text": message_text(kind, content),
        "timestamp": _timestamp(value.get("created")),
        "client_phone": None,
        "client_name": _client_name(chat, value.get("author_id")),
        "client_email": None,
        "media": {
            "has_voice": kind == "voice",
            "voice_url": voice_url if kind == "voice" else None,
            "voice_transcribed_text": None,
            "has_images": image is not None,
            "images": [{"url": image}] if image else [],
            "has_video": kind == "video",
            "videos": [],
            "has_document": kind == "file",
        },
        "meta": meta,
        "prefilled_data": {"model": None, "parts_owner": None},
    }
