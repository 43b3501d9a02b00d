"""contracts/gateway.openapi.yaml: valid, matched by what the gateway serves, passed by our gateway,
and failed (with the operation named) by gateways that break it."""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
import yaml
from fastapi import FastAPI

from avito_gateway.app import create_app
from avito_gateway.deps import require_api_key
from avito_gateway.settings import GatewaySettings
from avito_harness.cli import main
from avito_harness.fakes.settings import DEMO_API_KEY, DEMO_USER_ID
from avito_harness.judge.contract.drift import drift
from avito_harness.judge.contract.runner import ContractOptions, check_gateway, mask_answer
from avito_harness.stack.local import Stack
from avito_harness.stack.serve import ServedApp, serve_in_thread
from tests.conftest import CONTRACTS

USER = DEMO_USER_ID
KEY = DEMO_API_KEY
GATEWAY_CONTRACT = CONTRACTS / "gateway.openapi.yaml"


def _contract() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(GATEWAY_CONTRACT.read_text(encoding="utf-8"))
    return doc


def _settings(sim: Stack, tmp_path: Path, **overrides: Any) -> GatewaySettings:
    values = {"api_key": KEY, "avito_client_id": "sim-client-id", "avito_client_secret": "sim-client-secret",
              "avito_user_id": USER, "avito_api_base_url": sim.urls["avito"], "data_dir": tmp_path / "gw",
              "rate_limit_requests": 100_000, "retry_min_wait": 0.01, "retry_max_wait": 0.05, **overrides}
    return GatewaySettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def serve(sim: Stack, tmp_path: Path) -> Iterator[Callable[..., ServedApp]]:
    started: list[ServedApp] = []

    def start(wrap: Callable[[FastAPI], Any] = lambda app: app, **overrides: Any) -> ServedApp:
        app = create_app(_settings(sim, tmp_path, **overrides), clock=sim.clock)
        served = serve_in_thread(wrap(app), name="gateway-under-contract")
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


# --- the files ----------------------------------------------------------------------------------------

def test_contract_files_are_valid() -> None:
    doc = _contract()
    assert doc["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(doc).get_all_operations()  # loads and resolves
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["operationId"] and "200" in op["responses"], f"{method} {path}"
            if path.startswith("/api/"):
                assert op.get("security", doc["security"]) == [{"ApiKey": []}], f"{method} {path} must need the key"
                assert "401" in op["responses"], f"{method} {path} documents no 401"
    for name in ("normalized-message.schema.json", "bat-out.input.schema.json", "avito/webhook-v3.schema.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads((CONTRACTS / name).read_text()))
    assert "CREATE TABLE IF NOT EXISTS messages_history" in (CONTRACTS / "crm" / "schema.sql").read_text()


def _json_schema(doc: dict[str, Any], node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: refs inlined, ``nullable`` as a null type."""
    if isinstance(node, list):
        return [_json_schema(doc, n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _json_schema(doc, target)
    out = {k: _json_schema(doc, v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def test_every_example_in_the_contract_is_valid_against_its_schema() -> None:
    doc = _contract()
    checked = 0
    media_objects = [m for item in doc["paths"].values() for op in item.values()
                     for r in op["responses"].values() for m in (r.get("content") or {}).values()]
    media_objects += [m for r in doc["components"]["responses"].values() for m in (r.get("content") or {}).values()]
    media_objects += [m for item in doc["paths"].values() for op in item.values()
                      for m in (op.get("requestBody") or {}).get("content", {}).values()]
    for media in media_objects:
        if "example" in media:
            jsonschema.validate(media["example"], _json_schema(doc, media["schema"]))
            checked += 1
    assert checked >= 6


# --- drift --------------------------------------------------------------------------------------------

def _served() -> dict[str, Any]:
    settings = GatewaySettings(_env_file=None, api_key="k", avito_client_id="a", avito_client_secret="b")  # type: ignore[call-arg]
    served: dict[str, Any] = create_app(settings).openapi()
    return served


def test_served_openapi_matches_the_contract() -> None:
    difference = drift(_contract(), _served())
    assert difference == "", f"the gateway's OpenAPI drifted from contracts/gateway.openapi.yaml:\n{difference}"


def test_a_renamed_field_shows_up_as_a_readable_diff() -> None:
    served = copy.deepcopy(_served())
    answer = served["components"]["schemas"]["ChatsAnswer"]
    answer["properties"]["items"] = answer["properties"].pop("chats")
    answer["required"] = ["success", "items"]
    difference = drift(_contract(), served)
    assert '-   "chats": {' in difference and '+   "items": {' in difference


# --- our gateway passes ---------------------------------------------------------------------------------

def test_our_gateway_passes_every_check_including_writes(serve: Callable[..., ServedApp], sim: Stack) -> None:
    gateway = serve()
    chat = sim.avito.account(USER)["chats"][0]["id"]
    results = check_gateway(ContractOptions(gateway.url, KEY, allow_writes=True, chat_ids=(chat,), max_examples=15,
                                           profile="full")).results
    failures = {r.label: [v.title for v in r.violations] for r in results if not r.ok}
    assert failures == {}
    assert {r.label: r.skipped for r in results if r.skipped} == {}  # every operation judged, the image send too
    assert {r.operation for r in results} >= {"health", "listChats", "sendMessage", "sendImage", "sendBulk", "markRead"}
    sends = sim.avito.journal(method="POST", path="/messenger/v1/accounts/*/chats/*/messages")
    touched = {e["path"].split("/chats/")[1].split("/")[0] for e in sends if e["status"] == 200}
    assert touched
    assert touched <= {chat}, "valid sends went only to the named chat"


def test_read_only_by_default(serve: Callable[..., ServedApp], sim: Stack) -> None:
    gateway = serve()
    results = check_gateway(ContractOptions(gateway.url, KEY, max_examples=5)).results
    assert all(r.label.startswith(("GET ", "OPTIONS ")) for r in results) and all(r.ok for r in results)
    writes = sim.avito.journal(method="POST", path="/messenger/v1/accounts/*") + sim.avito.journal(
        method="POST", path="/messenger/v3/webhook")
    assert writes == []  # (POST /messenger/v1/subscriptions is Avito's way of listing)


def test_stateful_links_from_chats_to_messages_and_read(serve: Callable[..., ServedApp]) -> None:
    gateway = serve()
    schema = schemathesis.openapi.from_path(str(GATEWAY_CONTRACT))
    schema.config.update(base_url=gateway.url)
    schema.config.generation.update(with_security_parameters=False)

    @schema.auth()
    class ApiKey:
        def get(self, case: Any, context: Any) -> str:
            return KEY

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": data}

    schema = schema.include(operation_id=["listChats", "chatMessages", "markRead"])
    machine = schema.as_state_machine()
    machine.run(settings=__import__("hypothesis").settings(max_examples=8, stateful_step_count=4, deadline=None))


# --- broken gateways are caught -------------------------------------------------------------------------

def _rename_chats_field(app: FastAPI) -> Any:
    """GET /api/chats answers ``items`` where the contract says ``chats`` (a planted-defect layer of avito_doubles)."""
    from avito_doubles.fronts import answers_changed

    return answers_changed(app, "GET", "/api/chats",
                           lambda status, body: (status, {("items" if k == "chats" else k): v for k, v in body.items()}))


def _500_on_bad_input(app: FastAPI) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def swap(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                message = {**message, "status": 500}
            await send(message)

        await app(scope, receive, swap if scope["type"] == "http" else send)

    return wrapped


def _no_key_check(app: FastAPI) -> Any:
    app.dependency_overrides[require_api_key] = lambda: None
    return app


@pytest.mark.parametrize(("broken", "operation", "fault"), [
    (_rename_chats_field, "GET /api/chats", "Response violates schema"),
    (_500_on_bad_input, "GET /api/chats", "Server error"),
    (_no_key_check, "GET /api/token", "API key not enforced"),
])
def test_broken_gateways_fail_the_contract_command(serve: Callable[..., ServedApp], capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, broken: Any, operation: str, fault: str) -> None:
    gateway = serve(broken)
    junit = tmp_path / "contract.xml"
    code = main(["contract", "--gateway-url", gateway.url, "--api-key", KEY, "--max-examples", "10",
                 "--junit", str(junit), "--profile", "full"])  # full: our field names count
    out = capsys.readouterr().out
    assert code == 1
    assert operation in out and fault in out, out[-3000:]
    assert "reproduce: curl" in out
    assert f'name="{operation}' in junit.read_text() and "<failure" in junit.read_text()


def test_our_gateway_exits_0_from_the_command_line(serve: Callable[..., ServedApp], capsys: pytest.CaptureFixture[str]) -> None:
    gateway = serve()
    assert main(["contract", "--gateway-url", gateway.url, "--api-key", KEY, "--max-examples", "5"]) == 0
    assert "failed" in capsys.readouterr().out


def test_command_refuses_writes_without_named_chats_and_a_dead_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract", "--gateway-url", "http://127.0.0.1:9", "--api-key", "k", "--allow-writes"]) == 2
    assert main(["contract", "--gateway-url", "http://127.0.0.1:9", "--api-key", "k"]) == 2
    out = capsys.readouterr().out
    assert "--chat-id" in out and "no gateway answers" in out and out.count("[usage_error]") == 1
    assert "[setup_error]" in out


def test_a_gateway_started_by_command_is_checked_with_writes_against_the_fakes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``contract --gateway-cmd`` as ``run`` takes it: the fakes and the gateway started, sends to the fake chats."""
    report = tmp_path / "contract.json"
    code = main(["contract", "--gateway-cmd", f"{sys.executable} -m avito_gateway", "--max-examples", "5",
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    judged = {r["operation"] for r in json.loads(report.read_text())["operations"]}
    assert {"sendMessage", "sendImage", "sendBulk"} <= judged  # writes ran: they only reach the fake Avito


@pytest.mark.parametrize(("argv", "said", "category"), [
    (["contract"], "give --gateway-url (a running gateway) or --gateway-cmd", "usage_error"),
    (["contract", "--gateway-url", "http://127.0.0.1:9", "--gateway-cmd", "x"], "one of them", "usage_error"),
    (["contract", "--gateway-url", "http://127.0.0.1:9"], "--gateway-url needs --api-key", "usage_error"),
    (["contract", "--gateway-cmd", "no-such-gateway --port {port}"], "--gateway-cmd: ", "setup_error"),
])
def test_a_contract_target_that_cannot_work_is_named_in_one_line(
        argv: list[str], said: str, category: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert said in out and f"[{category}]" in out and len(out.strip().splitlines()) == 1, out


SPEC_PATHS = re.compile(r"/(health|info|webhook/avito|api/(token|chats|chats/[^/]+/(messages|read)|messages/send"
                        r"(/image|/bulk)?|webhook/subscribe))")


def _spec_only(app: FastAPI) -> Any:
    """A gateway that serves SPEC and nothing more: none of our extension endpoints (FastAPI's 404 for any path it
    does not serve), /health and /info with only the fields SPEC names."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not SPEC_PATHS.fullmatch(scope["path"]):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"detail": "Not Found"}'})
            return
        if scope["type"] == "http" and scope["path"] in ("/health", "/info"):
            body = (b'{"status": "healthy"}' if scope["path"] == "/health" else
                    b'{"rate_limit_requests": 100, "rate_limit_window": 60, "max_connections": 20, "avito_user_id": 1}')
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)
    return wrapped


def test_seed_profile_checks_what_spec_promises_and_full_names_absent_operations(
        serve: Callable[..., ServedApp], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gateway = serve(_spec_only)
    assert main(["contract", "--gateway-url", gateway.url, "--api-key", KEY, "--max-examples", "5"]) == 0
    report = tmp_path / "full.json"
    assert main(["contract", "--gateway-url", gateway.url, "--api-key", KEY, "--max-examples", "5",
                 "--profile", "full", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "not implemented (404)" in out and "API key not enforced" not in out
    doc = json.loads(report.read_text())
    absent = {op["operation"] for op in doc["operations"] for v in op["violations"] if v["defect"] == "not_implemented"}
    assert absent == {"listInbound", "listRejected", "listOutbox", "listSubscriptions"}  # the GET ones (read-only)
    failing = {op["operation"] for op in doc["operations"] if not op["ok"]}
    assert failing == absent | {"health", "info"}  # full: our extra fields are required there


def test_reports_mask_secrets_in_answers() -> None:
    answer = '{"success": true, "access_token": "sim_at_abcdefgh12345678", "note": "key test-api-key-long"}'
    masked = mask_answer(answer, "test-api-key-long")
    assert "sim_at_abcdefgh" not in masked and "test-api-key-long" not in masked
    assert '"access_token": "***"' in masked


# --- the verdict: never judged with a refused key, no conclusion from a closed connection, secrets masked ---

def test_a_key_the_gateway_refuses_is_not_judged(serve: Callable[..., ServedApp], capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    """Every /api answer would be a documented 401: six "passed" operations would have tested nothing."""
    gateway = serve()
    report = tmp_path / "contract.json"
    code = main(["contract", "--gateway-url", gateway.url, "--api-key", "WRONG", "--max-examples", "5",
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 2, out[-2000:]
    assert "[usage_error]: the gateway refuses the API key given (GET /api/chats answered 401" in out
    assert "passed" not in out
    assert json.loads(report.read_text())["verdict"]["category"] == "usage_error"


def _500_closing_the_connection(app: FastAPI) -> Any:
    """An unhandled error on every keyed send: a 500 that leaves the keep-alive connection dead, so the next request
    on it gets no complete answer (a worker that died after answering); requests without the key get 401."""
    dead: set[Any] = set()

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        client = tuple(scope.get("client") or ())
        if client in dead:
            dead.discard(client)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
            raise RuntimeError("the worker is gone: the connection closes mid-answer")
        if scope["path"] == "/api/messages/send" and (b"x-api-key", KEY.encode()) in scope.get("headers", []):
            dead.add(client)
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            return
        await app(scope, receive, send)
    return wrapped


def test_a_closed_connection_is_retried_before_a_key_check_concludes(serve: Callable[..., ServedApp],
                                                                       sim: Stack) -> None:
    gateway = serve(_500_closing_the_connection)
    chat = sim.avito.account(USER)["chats"][0]["id"]
    results = check_gateway(ContractOptions(gateway.url, KEY, allow_writes=True, chat_ids=(chat,), max_examples=5)).results
    named = {v.defect for r in results for v in r.violations}
    assert "api_key_not_enforced" not in named, named  # the key is enforced: a fresh connection gets 401
    assert any(v.title.startswith("Server error") or "500" in v.message for r in results for v in r.violations)


def _answering(app: FastAPI, matches: Callable[[str], bool], status: int, body: bytes) -> Any:
    """``app`` with every request whose path ``matches`` answered ``status`` and the JSON ``body`` instead."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and matches(scope["path"]):
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)
    return wrapped


def _avito_404_passed_through(app: FastAPI) -> Any:
    """A gateway that passes Avito's "chat not found" through as its own 404 (not SPEC's form)."""
    return _answering(app, lambda path: path.startswith("/api/chats/") and path.endswith("/messages"), 404,
                      b'{"error": {"code": 404, "message": "chat not found"}}')


def test_an_avito_404_passed_through_is_not_an_absent_operation(serve: Callable[..., ServedApp]) -> None:
    gateway = serve(_avito_404_passed_through)
    results = check_gateway(ContractOptions(gateway.url, KEY, max_examples=5)).results
    (messages,) = [r for r in results if r.operation == "chatMessages"]
    assert not any(v.defect == "not_implemented" for v in messages.violations), messages.violations


def _token_preview(app: FastAPI) -> Any:
    """/api/token shows the first 20 characters of the token under a key no secret pattern knows."""
    return _answering(app, lambda path: path == "/api/token", 200,
                      b'{"success": true, "preview": "sim_at_0123456789abcd", "valid": true}')


def test_a_token_the_gateway_shows_is_masked_in_every_output(serve: Callable[..., ServedApp], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    gateway = serve(_token_preview)
    report, junit = tmp_path / "c.json", tmp_path / "c.xml"
    main(["contract", "--gateway-url", gateway.url, "--api-key", KEY, "--max-examples", "5", "--profile", "full",
          "--json", str(report), "--junit", str(junit)])
    for text in (capsys.readouterr().out, report.read_text(), junit.read_text()):
        assert "0123456789" not in text and "sim_at_0123" not in text
