"""Gateway contract checks against any running gateway, driven by contracts/gateway.openapi.yaml.

Read-only by default (GET operations); with ``allow_writes`` the send operations run too, but only towards
the chats the user names, because a deployed gateway talks to real customers. Before any check: the gateway
must answer, and it must accept the key given (a run where every call gets 401 would judge nothing, so it is
refused as could-not-judge, exit 2). Per operation: schemathesis generates valid and invalid requests (no
5xx, documented status codes, bodies valid against the contract, invalid data refused), and every ``/api/*``
operation is called without and with a wrong ``X-API-Key`` (must be 401).

Profiles: ``seed`` (the default) checks what SPEC promises: its endpoints and the fields it names
(``x-seed-required`` in the contract); ``full`` adds our extension endpoints (``x-profile: full``) and our
extra fields. An operation that answers 404 the way the gateway answers a path it does not have is "not
implemented (404)"; any other 404 (Avito's "chat not found" passed through) is the operation answering. Every
violation carries a defect code (:mod:`avito_harness.judge.defects`); every piece of the key or of a token the
gateway showed is masked in every output.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
import yaml

from avito_harness.judge.bounded_http import Bounds, bounded_client
from avito_harness.judge.contract.checks import (
    NotFoundBaseline,
    auth_violations,
    cors_result,
    idempotency_violations,
    not_implemented,
)
from avito_harness.judge.contract.fuzz import fuzz
from avito_harness.judge.contract.model import (
    PROFILES,
    ContractOptions,
    OperationResult,
    Violation,
    mask_answer,
)
from avito_harness.judge.verdict import CannotJudge, Category, ExitCode, Verdict
from avito_harness.paths import contracts_dir

__all__ = ["ContractOptions", "ContractRun", "OperationResult", "PROFILES", "Violation", "check_gateway",
           "load_contract", "mask_answer"]

WRITE_OPERATIONS = {"sendMessage", "sendImage", "sendBulk", "markRead"}
#: Never run against a deployed gateway: they change its state or Avito's.
NEVER = {"subscribeWebhook", "replayDeadLetters", "replayDeadLetter", "flushOutbox", "avitoWebhook"}


@dataclass
class ContractRun:
    results: list[OperationResult]
    secrets: list[str] = field(default_factory=list)

    def verdict(self) -> Verdict:
        bad = [r for r in self.results if not r.ok]
        if bad:
            return Verdict(ExitCode.DEFECTS, "defects")
        unjudged = [r for r in self.results if r.skipped]
        if unjudged:
            return Verdict(ExitCode.CANNOT_JUDGE, "not_judged", Category.NOT_JUDGED,
                           f"{len(unjudged)} operation(s) not judged: {unjudged[0].label}: {unjudged[0].skipped}")
        return Verdict(ExitCode.PASSED, "passed")


def load_contract(path: Path | None = None) -> dict[str, Any]:
    """The contract (ours by default); :class:`CannotJudge` (usage_error) names a file that is not one."""
    source = path or contracts_dir() / "gateway.openapi.yaml"
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CannotJudge(Category.USAGE, f"--contract {source}: cannot be read as YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise CannotJudge(Category.USAGE, f"--contract {source}: not an OpenAPI document (no paths)")
    return doc


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
            # fresh keys would be needed per request; idempotency has its own check
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


def _load(doc: dict[str, Any], api_key: str) -> Any:
    schema = schemathesis.openapi.from_dict(doc)
    # The key is ours to set (below); missing / wrong keys are checked on purpose in auth_violations.
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)

    @schema.auth()
    class ApiKey:
        def get(self, case: Any, context: Any) -> str:
            return api_key

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": data}

    return schema


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) and len(node) >= 8 and " " not in node else []


def _preflight(options: ContractOptions, http: httpx.Client) -> list[str]:
    """The gateway answers and accepts the key (else :class:`CannotJudge`); returns the secrets every output
    masks: the key, and whatever ``/api/token`` showed (a token preview must not be printed either)."""
    base = options.gateway_url.rstrip("/")
    try:
        http.get(f"{base}/health")
    except httpx.HTTPError as exc:
        raise CannotJudge(Category.SETUP, f"no gateway answers at {base}: GET /health: {type(exc).__name__}") from None
    refused = []
    for path in ("/api/chats", "/api/token"):
        try:
            answer = http.get(f"{base}{path}", headers={"X-API-Key": options.api_key})
        except httpx.HTTPError:
            continue
        if answer.status_code in (401, 403):
            refused.append(f"GET {path} answered {answer.status_code}")
        elif answer.status_code != 404:
            break
    else:
        if refused:
            raise CannotJudge(Category.USAGE, f"the gateway refuses the API key given ({'; '.join(refused)}): with "
                              "it every /api check would only see the refusal; check --api-key")
    secrets = [options.api_key]
    try:
        token = http.get(f"{base}/api/token", headers={"X-API-Key": options.api_key})
        secrets += _strings(token.json())
    except (httpx.HTTPError, ValueError):
        pass
    return [s for s in secrets if s]


def check_gateway(options: ContractOptions) -> ContractRun:
    """Every check; :class:`CannotJudge` when the gateway does not answer or refuses the key."""
    if options.profile not in PROFILES:
        raise CannotJudge(Category.USAGE, f"profile must be one of {', '.join(PROFILES)}")
    contract = load_contract(options.contract)
    try:
        pinned = _load(_scoped(contract, options), options.api_key)
        plain = _load(_scoped(contract, options, pin=False), options.api_key)
    except Exception as exc:  # noqa: BLE001 - schemathesis refuses the document: the user's file, not the gateway
        raise CannotJudge(Category.USAGE, f"--contract: schemathesis cannot use it: {type(exc).__name__}: {exc}") from None
    bounds = Bounds(request_timeout=options.timeout, option="--timeout")
    results: list[OperationResult] = []
    with bounded_client(bounds, retry_broken=True) as http:
        run = ContractRun(results, _preflight(options, http))
        baseline = NotFoundBaseline(options, http)
        idempotency = idempotency_violations(options, http) if options.allow_writes else []
        for found in pinned.get_all_operations():
            op = found.ok()
            result = OperationResult(op.definition.raw.get("operationId", op.label), op.label)
            results.append(result)
            absent = not_implemented(op, options, http, baseline)
            if absent is not None:
                result.violations.append(absent)
                continue
            result.violations.extend(auth_violations(op, options, http))
            # valid requests go only to the named chats; invalid ones are checked against the real contract
            invalid_source = plain.find_operation_by_label(op.label) or op
            fuzz(op, invalid_source, options, result, http)
            if result.operation == "sendMessage":
                result.violations.extend(idempotency)
        results.append(cors_result(options, http))
    for result in results:
        result.masked(run.secrets)
    return run
