"""A recording played back by the fake Avito: its answers in the order Avito gave them, its webhooks again.

:func:`to_scenario` turns a recording into the fake's scenario format (``avito.faults``: one rule per
recorded answer, in order per call, so the n-th send to a chat gets the n-th recorded answer; ``avito.webhooks``:
the recorded deliveries with their offsets; ``avito.chats``: the recorded chats, which the fake then holds
under their ids, so what the recording does not cover still finds them). Avito's semantics stay the fake's where a replay would only get
in the way: tokens are issued afresh (a recording holds none: they are masked) and webhook subscriptions are
the fake's own, so the gateway subscribes as usual and the replayed webhooks reach it. A call the recording
does not cover is answered by the fake as always, and :func:`not_in_recording` lists it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["MAX_GAP", "deliver", "not_in_recording", "recorded_account", "to_scenario", "webhooks_of"]

MAX_GAP = 5.0  # seconds: a recording's long pauses are cut to this when webhooks are delivered again
KEPT_HEADERS = {"content-type", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
LIVE = re.compile(r"^(/token/?|/messenger/v\d+/webhook(/unsubscribe)?/?|/messenger/v\d+/subscriptions/?)$")
RULE_NAME = "recorded"


def _glob(path: str) -> str:
    """A literal path as a fault route's glob (``*``, ``?`` and ``[`` match themselves)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def _body(content: dict[str, Any]) -> Any:
    text = content.get("text") or ""
    if "json" in str(content.get("mimeType")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _live(method: str, path: str, status: int) -> bool:
    """Calls the fake answers itself: a token Avito issued, webhook subscriptions (not a refusal of them)."""
    return bool(LIVE.match(path)) and 200 <= status < 300


ACCOUNT = re.compile(r"/accounts/(\d+)/")
CHAT = re.compile(r"/chats/([^/]+)")


def recorded_account(entries: Sequence[dict[str, Any]]) -> int | None:
    """The Avito account the recording is of (the user id in its calls' paths)."""
    for entry in entries:
        found = ACCOUNT.search(urlsplit(str(entry["request"]["url"])).path)
        if found:
            return int(found.group(1))
    return None


def _as_account(value: Any, old: int, new: int) -> Any:
    """Ids of the recorded account replaced by another account's (a webhook's user_id, the seller as author)."""
    if isinstance(value, dict):
        return {k: (new if k in ("user_id", "author_id") and value_is(v, old) else _as_account(v, old, new))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_as_account(v, old, new) for v in value]
    return value


def value_is(value: Any, wanted: int) -> bool:
    return str(value) == str(wanted)


def _chats(webhooks: Sequence[dict[str, Any]], paths: Sequence[str], user_id: int) -> list[dict[str, Any]]:
    """The recorded chats, for the fake to hold under their ids: from the webhooks (with their customer and ad),
    and the chats the recorded calls name."""
    found: dict[str, dict[str, Any]] = {}
    for hook in webhooks:
        value = ((hook["body"] or {}).get("payload") or {}).get("value") if isinstance(hook["body"], dict) else None
        if isinstance(value, dict) and value.get("chat_id"):
            author = value.get("author_id")
            customer = author if author is not None and not value_is(author, user_id) else None
            known = found.setdefault(str(value["chat_id"]), {"user_id": user_id, "chat_id": str(value["chat_id"]),
                                                             "chat_type": value.get("chat_type") or "u2i"})
            if customer and "customer_id" not in known:
                known["customer_id"] = int(customer)
            if value.get("item_id") and "item_id" not in known:
                known["item_id"] = int(value["item_id"])
    for path in paths:
        named = CHAT.search(path)
        if named and ACCOUNT.search(path):
            found.setdefault(named.group(1), {"user_id": user_id, "chat_id": named.group(1),
                                              "chat_type": "u2u" if named.group(1).startswith("u2u") else "u2i"})
    return list(found.values())


MESSAGE_FIELDS = ("id", "author_id", "type", "content", "created")


def _message(raw: Any, old: int | None, new: int | None) -> dict[str, Any] | None:
    """A message as the fake keeps it (a recorded answer's or webhook's), the recorded account's id replaced."""
    if not isinstance(raw, dict) or not raw.get("id") or not isinstance(raw.get("content"), dict):
        return None
    kept = {k: raw[k] for k in MESSAGE_FIELDS if k in raw}
    if old is not None and new is not None and value_is(kept.get("author_id"), old):
        kept["author_id"] = new
    return kept


def _messages(entries: Sequence[dict[str, Any]], webhooks: Sequence[dict[str, Any]], old: int | None,
              new: int | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Every message the recording shows, by chat and id: the recorded history pages and the webhooks."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in entries:
        request, response = entry["request"], entry.get("response") or {}
        path = urlsplit(str(request["url"])).path
        named = CHAT.search(path)
        if entry.get("_avito_kind") == "webhook" or str(request["method"]).upper() != "GET" or not named \
                or not path.rstrip("/").endswith("/messages") or int(response.get("status", 0)) != 200:
            continue
        body = _body(response.get("content") or {})
        listed = body.get("messages") if isinstance(body, dict) else body
        for raw in listed if isinstance(listed, list) else []:
            message = _message(raw, old, new)
            if message is not None:
                found.setdefault(named.group(1), {})[str(message["id"])] = message
    for hook in webhooks:
        value = ((hook["body"] or {}).get("payload") or {}).get("value") if isinstance(hook["body"], dict) else None
        message = _message(value, new, new)
        if message is not None and isinstance(value, dict) and value.get("chat_id"):
            found.setdefault(str(value["chat_id"]), {}).setdefault(str(message["id"]), message)
    return found


def to_scenario(entries: Sequence[dict[str, Any]], *, source: str = "a recording",
                user_id: int | None = None) -> dict[str, Any]:
    """The fake Avito's scenario for a recording; ``user_id``: play it for this account (the recorded account's
    id replaced in paths and webhooks), e.g. the one the harness's gateway serves."""
    old = recorded_account(entries)
    new = user_id if user_id is not None else old
    faults, webhooks, paths, first = [], [], [], None
    for n, entry in enumerate(entries):
        request, response = entry["request"], entry.get("response") or {}
        method, status = str(request["method"]).upper(), int(response["status"])
        path = urlsplit(str(request["url"])).path
        if old is not None and new is not None:
            path = path.replace(f"/accounts/{old}/", f"/accounts/{new}/")
        if entry.get("_avito_kind") == "webhook":
            body = _body(request.get("postData") or {})
            if body in ({}, "", None):
                continue  # the registration probe: the fake probes the gateway's URL itself when it subscribes
            first = entry.get("_offset", 0.0) if first is None else first
            if old is not None and new is not None:
                body = _as_account(body, old, new)
            webhooks.append({"at": round(float(entry.get("_offset", 0.0)) - float(first), 3), "body": body})
            continue
        paths.append(path)
        if _live(method, path, status):
            continue
        headers = {h["name"]: h["value"] for h in response.get("headers", []) if h["name"].lower() in KEPT_HEADERS}
        faults.append({"name": f"{RULE_NAME} #{n + 1}: {method} {path}", "route": f"{method} {_glob(path)}",
                       "status": status, "body": _body(response.get("content") or {}), "headers": headers,
                       "times": 1, "required": False})
    chats = _chats(webhooks, paths, new) if new is not None else []
    history = _messages(entries, webhooks, old, new)
    for chat in chats:
        if history.get(chat["chat_id"]):
            chat["messages"] = sorted(history[chat["chat_id"]].values(), key=lambda m: int(m.get("created") or 0))
    return {"version": 1, "description": f"Avito as recorded in {source}: {len(faults)} answer(s), "
                                         f"{len(webhooks)} webhook(s), {len(chats)} chat(s)",
            "avito": {"faults": faults, "webhooks": webhooks, "chats": chats}}


def webhooks_of(scenario: dict[str, Any]) -> list[tuple[float, Any]]:
    return [(float(w.get("at", 0)), w["body"]) for w in (scenario.get("avito") or {}).get("webhooks", [])]


def deliver(url: str, webhooks: Sequence[tuple[float, Any]], *, wait: Callable[[float], object],
            max_gap: float = MAX_GAP) -> list[int]:
    """Each recorded webhook POSTed to ``url`` in order, ``wait`` called for the recorded gap (at most ``max_gap``);
    the statuses the receiver answered."""
    statuses, previous = [], 0.0
    with httpx.Client(timeout=10) as client:
        for at, body in webhooks:
            wait(min(max(0.0, at - previous), max_gap))
            previous = at
            statuses.append(client.post(url, json=body).status_code)
    return statuses


def not_in_recording(journal: Sequence[dict[str, Any]]) -> list[str]:
    """The calls the fake answered itself, not from the recording (tokens and subscriptions aside)."""
    found = []
    for call in journal:
        fault = call.get("fault") or ""
        if str(call.get("path", "")).startswith("/_sim") or _live(str(call["method"]), str(call["path"]), 200):
            continue
        if not str(fault).startswith(RULE_NAME):
            found.append(f"{call['method']} {call['path']} -> {call.get('status')}")
    return found
