"""What the Avito webhook receiver accepts: strict JSON, Avito's id alphabet, the content shape of each type.

Everything refused here is refused at ingest (recorded, 200 to Avito), so no
stored message can later fail to normalize or encode and block its chat:
``NaN``/``Infinity``/``1e400``, nesting deeper than any Avito payload, integers
SQLite cannot hold, lone surrogates, ids with control characters, and content
whose shape does not match its ``type``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from avito_gateway.store import MAX_SQL_INT

__all__ = ["Refused", "WebhookMessage", "read_webhook", "parse_webhook", "MAX_DEPTH", "ID_PATTERN"]

#: Avito's webhook bodies nest about six levels; anything far deeper is not Avito.
MAX_DEPTH = 32
#: Message ids are 32 hex characters, chat ids ``u2i-``/``u2u-`` plus URL-safe characters incl. ``~`` and ``_``.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_~.:-]{0,127}$"


class Refused(ValueError):
    """The body cannot be accepted; the message says why (it goes to ``/api/inbound/rejected``)."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Sizes(_Open):
    sizes: dict[StrictStr, StrictStr] = Field(min_length=1)


class _Image(_Open):
    image: _Sizes


class _VoiceRef(_Open):
    voice_id: StrictStr = Field(min_length=1, max_length=256)


class _Voice(_Open):
    voice: _VoiceRef


class _Text(_Open):
    text: StrictStr


class _Link(_Open):
    link: dict[str, Any]


class _Item(_Open):
    item: dict[str, Any]


class _Location(_Open):
    location: dict[str, Any]


#: The content shape Avito sends for each message type; other types may carry any object (or ``{}``).
CONTENT_SHAPES: dict[str, type[BaseModel]] = {
    "text": _Text, "image": _Image, "voice": _Voice, "link": _Link, "item": _Item, "location": _Location,
}


class WebhookMessage(_Open):
    id: StrictStr = Field(pattern=ID_PATTERN)
    chat_id: StrictStr = Field(pattern=ID_PATTERN)
    user_id: StrictInt = Field(ge=0, le=MAX_SQL_INT)
    author_id: StrictInt = Field(ge=0, le=MAX_SQL_INT)
    created: StrictInt = Field(ge=0, le=MAX_SQL_INT)
    type: StrictStr = Field(min_length=1, max_length=64)
    content: dict[str, Any] = Field(default_factory=dict)
    item_id: StrictInt | None = Field(None, ge=0, le=MAX_SQL_INT)


class _Payload(_Open):
    type: StrictStr
    value: dict[str, Any]


class _Envelope(_Open):
    id: StrictStr | None = None
    version: StrictStr | None = None
    timestamp: StrictInt | None = None
    payload: _Payload


def _no_constant(name: str) -> Any:
    raise Refused(f"JSON holds {name}, which JSON does not allow")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"number {text[:40]} is out of range")
    return value


def _depth(value: Any) -> int:
    """Nesting depth without recursion (a hostile body must not exhaust the stack here either)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def _where(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    return f"{where}: {first['msg']}"


def read_webhook(raw: bytes) -> tuple[dict[str, Any], WebhookMessage] | None:
    """The parsed body and its validated message, or None for Avito's subscription probe ``{}``; raises
    :class:`Refused`."""
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except Refused:
        raise
    except RecursionError:
        raise Refused("JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise Refused("body is not JSON") from None
    if body == {}:
        return None
    if _depth(body) > MAX_DEPTH:
        raise Refused(f"JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Refused("a string holds a lone surrogate (not valid UTF-8)") from None
    try:
        envelope = _Envelope.model_validate(body)
    except ValidationError as exc:
        raise Refused(f"not an Avito v3 webhook: {_where(exc, '')}") from None
    if envelope.payload.type != "message":
        raise Refused(f"unsupported payload type {envelope.payload.type[:64]!r}")
    try:
        value = WebhookMessage.model_validate(envelope.payload.value)
    except ValidationError as exc:
        raise Refused(f"not an Avito v3 webhook: {_where(exc, 'payload.value')}") from None
    shape = CONTENT_SHAPES.get(value.type)
    if shape is not None:
        try:
            shape.model_validate(value.content)
        except ValidationError as exc:
            raise Refused(f"{value.type} message with the wrong content: {_where(exc, 'content')}") from None
    return body, value


def parse_webhook(raw: bytes) -> dict[str, Any] | None:
    """The parsed body alone (see :func:`read_webhook`)."""
    read = read_webhook(raw)
    return None if read is None else read[0]
