"""Gateway contract checks against any running gateway, driven by contracts/gateway.openapi.yaml.

Read-only by default (GET operations); with ``allow_writes`` the send
operations run too, but only towards the chats the user names, because a
deployed gateway talks to real customers. Per operation: schemathesis
generates valid and invalid requests (no 5xx, documented status codes,
bodies valid against the contract, invalid data refused), and every
``/api/*`` operation is called without and with a wrong ``X-API-Key`` (must
be 401).

Profiles: ``seed`` (the default) checks what SPEC promises: its endpoints
and the fields it names (``x-seed-required`` in the contract); ``full``
adds our extension endpoints (``x-profile: full``) and our extra fields. An
operation that answers 404 as if it were not there is reported as "not
implemented (404)", not as a failed auth check. Every violation carries a
defect code (:mod:`avito_harness.defects`); answers in the report are masked.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode

from avito_harness.leaks import mask
from avito_harness.paths import contracts_dir

__all__ = ["ContractOptions", "OperationResult", "PROFILES", "Violation", "check_gateway", "load_contract",
           "mask_answer"]

PROFILES = ("seed", "full")
#: JSON string values under these keys are secrets: never printed.
_SECRET_VALUE = re.compile(r'("[^"]*(?:token|secret|password|authorization|api[_-]?key)[^"]*"\s*:\s*")([^"]{8,})(")',
                           re.IGNORECASE)

WRITE_OPERATIONS = {"sendMessage", "sendImage", "sendBulk", "markRead"}
#: Never run against a deployed gateway: they change its state or Avito's.
NEVER = {"subscribeWebhook", "replayDeadLetters", "replayDeadLetter", "flushOutbox", "avitoWebhook"}


@dataclass(frozen=True)
class ContractOptions:
    gateway_url: str
    api_key: str
    allow_writes: bool = False
    chat_ids: tuple[str, ...] = ()
    max_examples: int = 25
    timeout: float = 30.0
    contract: Path | None = None
    profile: str = "seed"


@dataclass
class Violation:
    title: str
    message: str
    curl: str
    defect: str = "contract_violation"  # a code from avito_harness.defects.CATALOGUE


@dataclass
class OperationResult:
    operation: str
    label: str
    calls: int = 0
    violations: list[Violation] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


def load_contract(path: Path | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((path or contracts_dir() / "gateway.openapi.yaml").read_text(encoding="utf-8"))
    return doc


def mask_answer(text: str, api_key: str = "") -> str:
    """An answer as a report may print it: secret-looking JSON values and the API key masked."""
    text = _SECRET_VALUE.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    return mask(text, [api_key]) if api_key else text


def _seed_schemas(doc: dict[str, Any]) -> None:
    """Answers need only what SPEC names: ``x-seed-required`` replaces ``required`` (nested ones are dropped)."""

    def loosen(schema: Any) -> None:
        if isinstance(schema, dict):
            schema.pop("required", None)
            for sub in (schema.get("properties") or {}).values():
                loosen(sub)

    for schema in doc.get("components", {}).get("schemas", {}).values():
        if "x-seed-required" in schema:
            for sub in (schema.get("properties") or {}).values():
                loosen(sub)
            schema["required"] = list(schema["x-seed-required"])
            if not schema["required"]:
                del schema["required"]


def _scoped(doc: dict[str, Any], options: ContractOptions, *, pin: bool = True) -> dict[str, Any]:
    """The contract cut to what may run here; with ``pin``, writes go to the named chats only."""
    doc = copy.deepcopy(doc)
    if options.profile == "seed":
        _seed_schemas(doc)
    for path, item in list(doc["paths"].items()):
        for method, op in list(item.items()):
            op_id = op.get("operationId", "")
            write = method != "get"
            if options.profile == "seed" and op.get("x-profile") == "full":
                del item[method]
                continue
            if op_id in NEVER or (write and (not options.allow_writes or op_id not in WRITE_OPERATIONS)):
                del item[method]
                continue
            if write and pin:
                _pin_chats(op, options.chat_ids)
            # fresh keys would be needed per request; idempotency has its own check (_idempotency_violations)
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "Idempotency-Key"
                                and p.get("$ref") != "#/components/parameters/IdempotencyKey"]
        if not item:
            del doc["paths"][path]
    return doc


def _pin_chats(op: dict[str, Any], chats: tuple[str, ...]) -> None:
    pinned = {"type": "string", "enum": list(chats)}
    for param in op.get("parameters", []):
        if param.get("name") == "chat_id":
            param["schema"] = pinned
    for media in (op.get("requestBody") or {}).get("content", {}).values():
        schema = media.get("schema", {})
        for variant in schema.get("oneOf", [schema]):
            props = variant.get("properties", {})
            if "chat_id" in props:
                props["chat_id"] = pinned
            if "chat_ids" in props:
                props["chat_ids"] = {"type": "array", "minItems": 1, "items": pinned}
            items = props.get("messages", {}).get("items", {}).get("properties", {})
            if "chat_id" in items:
                items["chat_id"] = pinned


def _curl(case: Any, url: str) -> str:
    command: str = case.as_curl_command(base_url=url)
    return command.replace("'X-API-Key: [Filtered]'", '"X-API-Key: $GATEWAY_API_KEY"')


def _describe(exc: BaseException, response: httpx.Response, api_key: str) -> tuple[str, str]:
    failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
    titles = "; ".join(dict.fromkeys(getattr(e, "title", type(e).__name__) for e in failures))
    lines = [f"- {getattr(e, 'title', type(e).__name__)}: {getattr(e, 'message', '') or e}".rstrip(": ") for e in failures]
    lines.append(f"answer: {response.status_code} {mask_answer(response.text[:300], api_key)}")
    return titles, "\n".join(lines)


def _fuzz_defect(response: httpx.Response) -> str:
    """A 422 (FastAPI's default) or any non-SPEC error body for a bad request is its own defect class."""
    if response.status_code == 422:
        return "validation_not_spec_body"
    return "contract_violation"


def _auth_violations(op: Any, options: ContractOptions, http: httpx.Client) -> list[Violation]:
    """Every /api/* operation: no key and a wrong key must both be 401."""
    path = op.path
    if not path.startswith("/api/"):
        return []
    url = options.gateway_url.rstrip("/") + path.replace("{chat_id}", "u2i-contract-check").replace("{item_id}", "1")
    found = []
    for label, headers in (("without X-API-Key", {}), ("with a wrong X-API-Key", {"X-API-Key": "wrong-" + "x" * 12})):
        try:
            status = http.request(op.method.upper(), url, headers=headers, json={}).status_code
        except httpx.HTTPError as exc:
            status = f"no answer ({type(exc).__name__})"  # type: ignore[assignment]
        if status != 401:
            curl = f"curl -X {op.method.upper()} '{url}'" + (f" -H '{next(iter(headers))}: wrong'" if headers else "")
            found.append(Violation("API key not enforced", f"{label}: answered {status}, expected 401", curl,
                                   "api_key_not_enforced"))
    return found


def _post_waiting_out_429(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """A real gateway's own rate limit may be spent by the fuzzing: wait it out once (at most 65 s)."""
    response = http.post(url, json=body, headers=headers)
    if response.status_code == 429:
        wait = min(65.0, float(response.headers.get("Retry-After") or 5))
        threading.Event().wait(wait)
        response = http.post(url, json=body, headers=headers)
    return response


def _idempotency_violations(options: ContractOptions, http: httpx.Client) -> list[Violation]:
    """A retried send with the same Idempotency-Key must answer the first send's message id (posted once)."""
    key = f"contract-check-{uuid.uuid4().hex}"
    body = {"chat_id": options.chat_ids[0], "text": "avito-harness contract check: idempotency"}
    url = f"{options.gateway_url.rstrip('/')}/api/messages/send"
    headers = {"X-API-Key": options.api_key, "Idempotency-Key": key}
    answers = [_post_waiting_out_429(http, url, body, headers) for _ in range(2)]
    ids = [a.json().get("response", {}).get("id") if a.status_code == 200 else None for a in answers]
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


def _load(doc: dict[str, Any], api_key: str) -> Any:
    schema = schemathesis.openapi.from_dict(doc)
    # The key is ours to set (below); missing / wrong keys are checked on purpose in _auth_violations.
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)

    @schema.auth()
    class ApiKey:
        def get(self, case: Any, context: Any) -> str:
            return api_key

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": data}

    return schema


def _not_implemented(op: Any, options: ContractOptions, http: httpx.Client) -> Violation | None:
    """A 404 that is not SPEC's error form (a missing chat is): the gateway has no such operation."""
    url = options.gateway_url.rstrip("/") + op.path.replace("{chat_id}", "u2i-contract-check").replace("{item_id}", "1")
    try:
        answer = http.request(op.method.upper(), url, headers={"X-API-Key": options.api_key}, json={})
    except httpx.HTTPError:
        return None
    if answer.status_code != 404:
        return None
    try:
        spec_shaped = answer.json().get("success") is False
    except (ValueError, AttributeError):
        spec_shaped = False
    if "{" in op.path and spec_shaped:
        return None
    return Violation("not implemented (404)", f"{op.method.upper()} {op.path} answered 404 "
                     f"{mask_answer(answer.text[:120], options.api_key)}: the gateway does not serve it",
                     f"curl -X {op.method.upper()} '{url}' -H \"X-API-Key: $GATEWAY_API_KEY\"", "not_implemented")


def _cors_result(options: ContractOptions, http: httpx.Client) -> OperationResult:
    """A browser page on any site must not get the API's answers with the user's credentials."""
    result = OperationResult("cors", "OPTIONS /api/chats (CORS preflight)", calls=1)
    origin = "https://attacker.example"
    url = f"{options.gateway_url.rstrip('/')}/api/chats"
    try:
        answer = http.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                            "Access-Control-Request-Headers": "x-api-key"})
    except httpx.HTTPError:
        return result
    allowed = answer.headers.get("access-control-allow-origin", "")
    if answer.headers.get("access-control-allow-credentials", "").lower() == "true" and allowed in ("*", origin):
        result.violations.append(Violation(
            "CORS open with credentials", f"a preflight from {origin} got allow-origin {allowed!r} with "
            "allow-credentials true: any web page a user opens may call the API as that user",
            f"curl -X OPTIONS '{url}' -H 'Origin: {origin}' -H 'Access-Control-Request-Method: GET' -i",
            "cors_wildcard_credentials"))
    return result


def check_gateway(options: ContractOptions) -> list[OperationResult]:
    if options.profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
    contract = load_contract(options.contract)
    pinned = _load(_scoped(contract, options), options.api_key)
    plain = _load(_scoped(contract, options, pin=False), options.api_key)
    results: list[OperationResult] = []
    with httpx.Client(timeout=options.timeout) as http:
        idempotency = _idempotency_violations(options, http) if options.allow_writes else []
        for found in pinned.get_all_operations():
            op = found.ok()
            result = OperationResult(op.definition.raw.get("operationId", op.label), op.label)
            results.append(result)
            absent = _not_implemented(op, options, http)
            if absent is not None:
                result.violations.append(absent)
                continue
            result.violations.extend(_auth_violations(op, options, http))
            # valid requests go only to the named chats; invalid ones are checked against the real contract
            invalid_source = plain.find_operation_by_label(op.label) or op
            _fuzz(op, invalid_source, options, result)
            if result.operation == "sendMessage":
                result.violations.extend(idempotency)
        results.append(_cors_result(options, http))
    return results


def _fuzz(op: Any, invalid_source: Any, options: ContractOptions, result: OperationResult) -> None:
    seen: set[str] = set()
    # An image must really be an image: schema-valid bytes that are not one are refused, rightly.
    excluded = [positive_data_acceptance] if result.operation == "sendImage" else []
    strategy = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         invalid_source.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=options.max_examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        result.calls += 1
        try:
            response = case.call(base_url=options.gateway_url, timeout=options.timeout)
        except httpx.HTTPError as exc:
            _add(result, seen, "No answer", f"{type(exc).__name__}: {exc}", _curl(case, options.gateway_url))
            return
        try:
            case.validate_response(response, excluded_checks=excluded)
        except (Failure, FailureGroup) as exc:
            title, message = _describe(exc, response, options.api_key)
            _add(result, seen, title, message, _curl(case, options.gateway_url), _fuzz_defect(response))

    try:
        run()
    except Exception as exc:  # the schema itself could not be used for this operation
        result.skipped = f"{type(exc).__name__}: {exc}"[:300]


def _add(result: OperationResult, seen: set[str], title: str, message: str, curl: str,
         defect: str = "contract_violation") -> None:
    if title in seen:
        return
    seen.add(title)
    result.violations.append(Violation(title, message.strip()[:600], curl, defect))
