"""BAT OUT Avito: send the answer through the gateway, write messages_history, answer like the workflow.

POST ``/api/messages/send`` with ``X-API-Key``, 30 s timeout, 2 retries that
reuse one ``Idempotency-Key`` (so a retry never posts twice), check
``success``, take ``response.id``. A failed send is written to history with
the gateway's error.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

__all__ = ["BatOutAvito", "CHAT_ID"]

CHAT_ID = re.compile(r"^(u2i|u2u|a2u)-[A-Za-z0-9~_\-]+$")


class BatOutAvito:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def send(self, job: dict[str, Any], *, gateway_url: str | None, api_key: str, timeout: float, retries: int,
             idempotency_key: str) -> dict[str, Any]:
        """``job`` = {tenant_id, appeal_id, channel, message_text, external_chat_id}; returns the outcome."""
        chat_id = str(job.get("external_chat_id") or "")
        if not CHAT_ID.match(chat_id):
            return {"success": False, "channel": "avito", "error": f"invalid external_chat_id {chat_id!r}"}
        if not gateway_url:
            return {"success": False, "channel": "avito", "error": "gateway URL is not configured"}
        last_error, attempt = "no attempt made", 0
        for attempt in range(1, retries + 2):
            try:
                response = self.http.post(
                    f"{gateway_url.rstrip('/')}/api/messages/send",
                    json={"chat_id": chat_id, "text": job["message_text"]},
                    headers={"X-API-Key": api_key, "Idempotency-Key": idempotency_key},
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                last_error = f"gateway unreachable: {type(exc).__name__}"
                continue
            body = _json(response)
            if response.status_code == 200 and body.get("success") is True:
                return {"success": True, "channel": "avito", "message_id": str(body["response"]["id"]),
                        "chat_id": chat_id, "appeal_id": job["appeal_id"], "attempts": attempt}
            last_error = str(body.get("error") or f"gateway answered {response.status_code}")
            if not body.get("retryable", response.status_code >= 500 or response.status_code == 429):
                break
        return {"success": False, "channel": "avito", "error": last_error, "attempts": attempt}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
