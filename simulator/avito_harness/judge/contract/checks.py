"""The contract checks no generated request makes: the API key, absent operations, CORS, idempotent sends.

Every call goes through the judge's bounded client; a connection the gateway closed (an unhandled 500 that
drops keep-alive, say) is tried once more on a fresh one before anything is concluded from it.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx

from avito_harness.judge.contract.model import ContractOptions, OperationResult, Violation, mask_answer
from avito_harness.waiting import pause

__all__ = ["NotFoundBaseline", "auth_violations", "cors_result", "idempotency_violations", "not_implemented"]

PROBE_CHAT = "u2i-contract-check"


def _url(options: ContractOptions, path: str) -> str:
    return options.gateway_url.rstrip("/") + path.replace("{chat_id}", PROBE_CHAT).replace("{item_id}", "1")


def _fingerprint(answer: httpx.Response, path: str) -> tuple[int, str, str]:
    """What a 404 looks like with the path it was for taken out (a framework's "no such route" names it)."""
    body = answer.text[:500].replace(path, "{path}")
    body = re.sub(r"u2i-[\w-]+|avito-harness-no-such-[\w-]+", "{id}", body)
    return answer.status_code, answer.headers.get("content-type", "").split(";")[0], body


class NotFoundBaseline:
    """How the gateway answers a path it does not have, so a 404 that says more than that (a chat Avito does not
    know, passed through) is told from an operation that is not there."""

    def __init__(self, options: ContractOptions, http: httpx.Client) -> None:
        self.answers: dict[str, tuple[int, str, str]] = {}
        for method in ("GET", "POST"):
            path = f"/api/avito-harness-no-such-{uuid.uuid4().hex[:8]}"
            try:
                answer = http.request(method, options.gateway_url.rstrip("/") + path,
                                      headers={"X-API-Key": options.api_key}, json={})
            except httpx.HTTPError:
                continue
            self.answers[method] = _fingerprint(answer, path)

    def is_absent(self, method: str, answer: httpx.Response, path: str) -> bool:
        baseline = self.answers.get(method) or self.answers.get("GET")
        return baseline is not None and baseline[0] == answer.status_code and baseline == _fingerprint(answer, path)


def auth_violations(op: Any, options: ContractOptions, http: httpx.Client) -> list[Violation]:
    """Every /api/* operation: no key and a wrong key must both be 401."""
    path = op.path
    if not path.startswith("/api/"):
        return []
    url = _url(options, path)
    found = []
    for label, headers in (("without X-API-Key", {}), ("with a wrong X-API-Key", {"X-API-Key": "wrong-" + "x" * 12})):
        try:
            status: int | str = http.request(op.method.upper(), url, headers=headers, json={}).status_code
        except httpx.HTTPError as exc:
            status = f"no answer ({type(exc).__name__}, also on a fresh connection)"
        if status != 401:
            curl = f"curl -X {op.method.upper()} '{url}'" + (f" -H '{next(iter(headers))}: wrong'" if headers else "")
            found.append(Violation("API key not enforced", f"{label}: answered {status}, expected 401", curl,
                                   "api_key_not_enforced"))
    return found


def not_implemented(op: Any, options: ContractOptions, http: httpx.Client, baseline: NotFoundBaseline) -> Violation | None:
    """A 404 that looks exactly like the gateway's answer to a path it does not have: no such operation. A 404
    in SPEC's error form, or one that says something else (Avito's "chat not found" passed through), is the
    operation answering about a chat it was asked for."""
    url = _url(options, op.path)
    try:
        answer = http.request(op.method.upper(), url, headers={"X-API-Key": options.api_key}, json={})
    except httpx.HTTPError:
        return None
    if answer.status_code not in (404, 405):
        return None
    try:
        spec_shaped = answer.json().get("success") is False
    except (ValueError, AttributeError):
        spec_shaped = False
    path = url.removeprefix(options.gateway_url.rstrip("/"))
    if answer.status_code == 404 and "{" in op.path and spec_shaped:
        return None
    if answer.status_code == 404 and baseline.answers and not baseline.is_absent(op.method.upper(), answer, path):
        return None
    return Violation("not implemented (404)", f"{op.method.upper()} {op.path} answered {answer.status_code} "
                     f"{mask_answer(answer.text[:120], options.api_key)}, as the gateway answers a path it does not "
                     "have: the gateway does not serve it",
                     f"curl -X {op.method.upper()} '{url}' -H \"X-API-Key: $GATEWAY_API_KEY\"", "not_implemented")


def cors_result(options: ContractOptions, http: httpx.Client) -> OperationResult:
    """A browser page on any site must not get the API's answers with the user's credentials."""
    result = OperationResult("cors", "OPTIONS /api/chats (CORS preflight)", calls=1)
    origin = "https://attacker.example"
    url = f"{options.gateway_url.rstrip('/')}/api/chats"
    try:
        answer = http.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                            "Access-Control-Request-Headers": "x-api-key"})
    except httpx.HTTPError as exc:
        result.skipped = f"no answer to the preflight: {type(exc).__name__}"
        return result
    allowed = answer.headers.get("access-control-allow-origin", "")
    if answer.headers.get("access-control-allow-credentials", "").lower() == "true" and allowed in ("*", origin):
        result.violations.append(Violation(
            "CORS open with credentials", f"a preflight from {origin} got allow-origin {allowed!r} with "
            "allow-credentials true: any web page a user opens may call the API as that user",
            f"curl -X OPTIONS '{url}' -H 'Origin: {origin}' -H 'Access-Control-Request-Method: GET' -i",
            "cors_wildcard_credentials"))
    return result


#: The longest Retry-After the check waits out once (a deployed gateway's own limit spent by the fuzzing).
RETRY_AFTER_CAP = 65.0


def _post_waiting_out_429(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    response = http.post(url, json=body, headers=headers)
    if response.status_code == 429:
        try:
            wait = float(response.headers.get("Retry-After") or 5)
        except ValueError:
            wait = 5.0
        pause(min(RETRY_AFTER_CAP, max(wait, 0.0)), what="the gateway's Retry-After")
        response = http.post(url, json=body, headers=headers)
    return response


def idempotency_violations(options: ContractOptions, http: httpx.Client) -> list[Violation]:
    """A retried send with the same Idempotency-Key must answer the first send's message id (posted once)."""
    key = f"contract-check-{uuid.uuid4().hex}"
    body = {"chat_id": options.chat_ids[0], "text": "avito-harness contract check: idempotency"}
    url = f"{options.gateway_url.rstrip('/')}/api/messages/send"
    headers = {"X-API-Key": options.api_key, "Idempotency-Key": key}
    try:
        answers = [_post_waiting_out_429(http, url, body, headers) for _ in range(2)]
    except httpx.HTTPError as exc:
        return [Violation("Send failed", f"a send to {options.chat_ids[0]} got no answer ({type(exc).__name__}, also "
                          "on a fresh connection)", f"curl -X POST '{url}' ...", "send_failed")]
    ids = []
    for a in answers:
        try:
            ids.append(a.json().get("response", {}).get("id") if a.status_code == 200 else None)
        except (ValueError, AttributeError):
            ids.append(None)
    if ids[0] is not None and ids[0] == ids[1]:
        return []
    if answers[0].status_code != 200:
        return [Violation("Send failed", f"a plain send to {options.chat_ids[0]} answered {answers[0].status_code}: "
                          f"{mask_answer(answers[0].text[:300], options.api_key)}", f"curl -X POST '{url}' ...",
                          "send_failed")]
    curl = (f"curl -X POST '{url}' -H \"X-API-Key: $GATEWAY_API_KEY\" -H 'Idempotency-Key: {key}' "
            f"-H 'Content-Type: application/json' -d '{json.dumps(body, ensure_ascii=False)}'  # twice")
    statuses = ", ".join(str(a.status_code) for a in answers)
    return [Violation("Repeated send not idempotent",
                      f"two sends with one Idempotency-Key answered {statuses} with message ids {ids}; "
                      "n8n's retries would post twice", curl, "send_posted_twice")]
