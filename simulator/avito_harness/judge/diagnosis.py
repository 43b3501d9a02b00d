"""The first anomalous hop of a scenario, from what the fakes recorded: the root cause a failure report opens with.

An anomaly is something a correct gateway never causes: the fake Avito
refusing a request no fault was injected into (its error body and, for near
misses, the path Avito really serves), a webhook the gateway did not answer
200, a message n8n could not accept. Deliberate refusals are not anomalies:
injected faults, expired tokens (the test expired them), chats the scenario
named as unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from avito_harness.fakes.reasons import Reason

__all__ = ["Anomaly", "REASON_DEFECTS", "UNKNOWN_CHAT", "first_anomaly", "path_shape", "served_near_misses"]

#: The chat a scenario names on purpose to get Avito's 404 (a bulk send to it).
UNKNOWN_CHAT = "u2i-unknownChat0000000000"
#: Reasons the fake Avito records that prove a defect by themselves: the anomaly is then the root cause.
REASON_DEFECTS: dict[str, str] = {Reason.TOKEN_BASIC_AUTH: "token_basic_auth", Reason.OTHER_API_VERSION: "wrong_api_version",
                  Reason.PROBE_REFUSED: "probe_not_200", Reason.SEND_WITHOUT_TYPE: "send_without_type"}
SEND = re.compile(r"/messenger/v1/accounts/[^/]+/chats/[^/]+/messages")


@dataclass(frozen=True)
class Anomaly:
    code: str | None  # a defect code when the anomaly alone proves one (avito_harness.judge.defects.ROOT_CAUSES)
    summary: str  # one line, the same for the same cause in every scenario (grouping key)


def path_shape(path: str) -> str:
    """A path with its ids replaced, so the same call in two scenarios reads the same."""
    path = re.sub(r"/accounts/\d+", "/accounts/{user_id}", path)
    path = re.sub(r"/chats/[^/]+", "/chats/{chat_id}", path)
    return re.sub(r"/messages/[^/]+", "/messages/{message_id}", path)


def _error_text(extra: dict[str, Any]) -> str:
    raw = str(extra.get("error") or "")
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:160]
    if isinstance(body, dict) and "error_description" in body:
        return f"{body.get('error')}: {body['error_description']}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("message") or error)[:160] + (f" {error['fields']}" if error.get("fields") else "")
    return raw[:160]


def _served(entry: dict[str, Any]) -> Anomaly | None:
    """A near miss the fake Avito served as the call it nearly is: the gateway's mistake all the same."""
    extra = entry.get("extra") or {}
    if not extra.get("served") or extra.get("reason") not in REASON_DEFECTS:
        return None
    call = f"{entry.get('method')} {path_shape(str(entry.get('path', '')))}"
    return Anomaly(REASON_DEFECTS[extra["reason"]], f"gateway -> Avito: {call} (a near miss): {extra.get('hint', '')}")


def served_near_misses(journal: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason, what was seen) of every near miss the fake Avito served, each kind of call once."""
    found: dict[str, tuple[str, str]] = {}
    for entry in journal:
        anomaly = _served(entry)
        if anomaly is not None:
            found.setdefault(anomaly.summary, ((entry.get("extra") or {})["reason"], anomaly.summary))
    return list(found.values())


def _avito_anomaly(entry: dict[str, Any]) -> Anomaly | None:
    """What the journal's codes say (``extra.reason``, ``extra.fields``); hints and errors are only shown."""
    served = _served(entry)
    if served is not None:
        return served
    status, path, extra = entry.get("status", 0), str(entry.get("path", "")), entry.get("extra") or {}
    if status < 400 or entry.get("fault") or path.startswith("/_sim") or UNKNOWN_CHAT in path:
        return None
    reason, hint = extra.get("reason"), str(extra.get("hint") or "")
    if status in (401, 403) and reason == Reason.TOKEN_EXPIRED:
        return None  # the scenario expired the token: the gateway is to refresh it
    call = f"{entry.get('method')} {path_shape(path)}"
    summary = f"gateway -> Avito: {call} answered {status} {_error_text(extra)}".rstrip() + (f"; {hint}" if hint else "")
    if reason in REASON_DEFECTS:
        return Anomaly(REASON_DEFECTS[reason], summary)
    if path.rstrip("/") == "/token":
        return Anomaly("token_request_refused", summary)
    if (reason == Reason.VALIDATION_FAILED and entry.get("method") == "POST" and SEND.fullmatch(path)
            and "type" in (extra.get("fields") or [])):
        return Anomaly("send_without_type", summary)
    return Anomaly(None, summary)


def first_anomaly(journal: list[dict[str, Any]], deliveries: list[dict[str, Any]],
                  invalid: list[dict[str, Any]], failed_executions: list[dict[str, Any]] | None = None) -> Anomaly | None:
    """The earliest anomaly in one scenario's records (Avito's journal and webhook attempts, then n8n: what the
    gateway sent it, then a real n8n's failed executions)."""
    events: list[tuple[float, Anomaly]] = []
    for entry in journal:
        found = _avito_anomaly(entry)
        if found is not None:
            events.append((float(entry.get("seen_at") or 0), found))
    for attempt in deliveries:
        if attempt.get("status") != 200:
            result = attempt.get("status") or attempt.get("error")
            events.append((float(attempt.get("seen_at") or 0),
                           Anomaly(None, f"Avito -> gateway: a webhook delivery answered {result}, not 200")))
    if events:
        return min(events, key=lambda e: e[0])[1]
    if invalid:
        errors = invalid[0].get("schema_errors") or ["?"]
        return Anomaly(None, f"gateway -> n8n: the normalized message was refused: {errors[0]}")
    if failed_executions:
        return Anomaly("workflow_failed", f"n8n: {failed_executions[0]['summary']}")
    return None
