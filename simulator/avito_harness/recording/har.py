"""Recordings as HAR 1.2: one entry per call to Avito, and one per webhook Avito delivered (``_avito_kind``).

HAR because users already have tools for it: every browser's network panel opens it, and HAR viewers, diff
tools and Python's ``haralyzer`` read it. Entries carry Avito's calls as they went (method, URL, headers,
body, answer), with two extensions HAR allows (a leading underscore): ``_avito_kind`` (``avito`` or
``webhook``) and ``_offset`` (seconds since the recording began, for the webhooks' spacing).

Secrets never reach the file: :func:`masked` replaces tokens, client secrets and API keys in headers, query
strings, form and JSON bodies before an entry is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "Exchange", "HarWriter", "masked", "read_har"]

MASK = "***"
SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "set-cookie", "proxy-authorization", "x-n8n-api-key"}
SECRET_FIELDS = {"access_token", "refresh_token", "client_secret", "client_id", "api_key", "apikey", "password",
                 "token", "secret"}
BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")


@dataclass
class Exchange:
    """One request and its answer, as the proxy saw them (bodies as bytes)."""

    kind: str  # "avito" | "webhook"
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int
    response_headers: list[tuple[str, str]]
    response_body: bytes
    started: float  # epoch seconds
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def _mask_value(name: str, value: Any) -> Any:
    if name.lower() in SECRET_FIELDS and value not in (None, ""):
        return MASK
    return _mask_json(value)


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    if isinstance(value, str):
        return BEARER.sub(rf"\g<1>{MASK}", value)
    return value


def masked_text(text: str, mime: str) -> str:
    """A body with its secrets replaced: JSON by field name, forms by field name, anything else by pattern."""
    if "json" in mime:
        try:
            return json.dumps(_mask_json(json.loads(text)), ensure_ascii=False)
        except ValueError:
            pass
    if "x-www-form-urlencoded" in mime:
        pairs = parse_qsl(text, keep_blank_values=True)
        return urlencode([(k, MASK if k.lower() in SECRET_FIELDS else v) for k, v in pairs])
    return BEARER.sub(rf"\g<1>{MASK}", text)


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, MASK if k.lower() in SECRET_FIELDS else v) for k, v in parse_qsl(parts.query, True)])
    return urlunsplit(parts._replace(query=query))


def masked(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, MASK if k.lower() in SECRET_HEADERS else v) for k, v in headers]


def _mime(headers: list[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-type"), "application/octet-stream")


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def entry(exchange: Exchange, began: float) -> dict[str, Any]:
    """The HAR entry of one exchange, secrets masked."""
    req_mime, res_mime = _mime(exchange.request_headers), _mime(exchange.response_headers)
    url = masked_url(exchange.url)
    request: dict[str, Any] = {
        "method": exchange.method, "url": url, "httpVersion": "HTTP/1.1",
        "headers": [{"name": k, "value": v} for k, v in masked(exchange.request_headers)],
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, True)],
        "cookies": [], "headersSize": -1, "bodySize": len(exchange.request_body),
    }
    if exchange.request_body:
        request["postData"] = {"mimeType": req_mime, "text": masked_text(_text(exchange.request_body), req_mime)}
    text = masked_text(_text(exchange.response_body), res_mime)
    return {
        "startedDateTime": datetime.fromtimestamp(exchange.started, UTC).isoformat(timespec="milliseconds"),
        "time": round(exchange.seconds * 1000, 3),
        "request": request,
        "response": {"status": exchange.status, "statusText": "", "httpVersion": "HTTP/1.1",
                     "headers": [{"name": k, "value": v} for k, v in masked(exchange.response_headers)],
                     "cookies": [], "content": {"size": len(exchange.response_body), "mimeType": res_mime,
                                                "text": text},
                     "redirectURL": "", "headersSize": -1, "bodySize": len(exchange.response_body)},
        "cache": {}, "timings": {"send": 0, "wait": round(exchange.seconds * 1000, 3), "receive": 0},
        "_avito_kind": exchange.kind, "_offset": round(exchange.started - began, 3), **exchange.extra,
    }


class HarWriter:
    """Appends entries and rewrites the file after each (atomically): a recording stopped by Ctrl-C is whole."""

    def __init__(self, path: Path, *, began: float, transform: Any = None) -> None:
        self.path, self.began, self.transform = path, began, transform
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, exchange: Exchange) -> None:
        item = entry(exchange, self.began)
        if self.transform is not None:
            item = self.transform(item)
        with self._lock:
            self.entries.append(item)
            self._write()

    def _write(self) -> None:
        from avito_harness.cli.parser import version

        doc = {"log": {"version": "1.2", "creator": {"name": "avito-harness", "version": version()},
                       "pages": [], "entries": self.entries}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".recording-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)


def read_har(path: Path) -> list[dict[str, Any]]:
    """The entries of a recording; :class:`ValueError` names what is wrong with the file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a HAR recording ({exc})") from None
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: not a HAR recording (no log.entries)")
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("request"), dict)]
