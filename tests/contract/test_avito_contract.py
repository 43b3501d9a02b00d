"""The simulator's Avito subset against contracts/avito (our own contract, written from the facts)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import Failure, FailureGroup

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import DEMO_USER_ID, SimSettings
from tests.conftest import CONTRACTS, assert_avito_contract, avito_contract

USER = DEMO_USER_ID
CONTRACT_FILE = CONTRACTS / "avito" / "avito-messenger.openapi.yaml"

app = create_app(SimSettings(), clock=FakeClock(), transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
with TestClient(app) as _client:
    TOKEN = _client.post("/token", data={"grant_type": "client_credentials", "client_id": "sim-client-id",
                                         "client_secret": "sim-client-secret"}).json()["access_token"]
    CHAT = _client.get(f"/messenger/v2/accounts/{USER}/chats", headers={"Authorization": f"Bearer {TOKEN}"}).json()["chats"][0]["id"]



def _single_account_contract() -> dict[str, Any]:
    """The contract with path ids pinned to the seeded account and chat, so valid cases reach real behaviour."""
    doc: dict[str, Any] = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
    params = doc["components"]["parameters"]
    params["UserId"]["schema"] = {"type": "integer", "enum": [USER]}
    params["ChatId"]["schema"] = {"type": "string", "enum": [CHAT]}
    return doc


schema = schemathesis.openapi.from_dict(_single_account_contract())
schema.app = app
# Unknown query parameters are ignored, as by any HTTP API (Avito included): not a contract violation.
schema.config.generation.update(allow_extra_parameters=False)


@schema.auth()
class BearerToken:
    """Lets schemathesis know the auth, so its own auth checks (missing / wrong token) stay meaningful."""

    def get(self, case: Any, context: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _contract() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
    return doc


def test_contract_files_are_valid() -> None:
    doc = _contract()
    assert doc["openapi"].startswith("3.")
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("operationId"), f"{method.upper()} {path} has no operationId"
            assert "200" in op["responses"], f"{op['operationId']} documents no success"
    webhook = json.loads((CONTRACTS / "avito" / "webhook-v3.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(webhook)


def test_simulator_serves_every_contract_operation_and_no_other_avito_path() -> None:
    """Drift check: contract operation ids == the operation ids the simulator serves on Avito paths."""
    contract_ops = {op["operationId"] for item in _contract()["paths"].values() for op in item.values()}
    served = {
        op["operationId"]
        for path, item in app.openapi()["paths"].items()
        if not path.startswith(("/_sim", "/media"))
        for op in item.values()
    }
    assert served == contract_ops, f"only in contract: {contract_ops - served}; only served: {served - contract_ops}"


def test_a_response_that_breaks_the_contract_is_caught() -> None:
    request = httpx.Request("GET", f"https://api.avito.ru/messenger/v2/accounts/{USER}/chats")
    wrong = httpx.Response(200, json={"items": []}, request=request)
    wrong.elapsed = timedelta(0)
    with pytest.raises((Failure, FailureGroup)):
        assert_avito_contract(wrong)
    renamed = httpx.Response(200, json={"chats": [{"chat_id": "u2i-x", "created": 1, "updated": 1, "users": []}]},
                             request=request)
    renamed.elapsed = timedelta(0)
    with pytest.raises((Failure, FailureGroup)):
        assert_avito_contract(renamed)


def test_the_documented_examples_of_the_contract_load() -> None:
    assert avito_contract().find_operation_by_path("POST", f"/messenger/v1/accounts/{USER}/chats/x/messages/image")


@schema.parametrize()
def test_simulator_answers_conform_and_never_5xx(case: Any) -> None:
    """Generated requests (valid and invalid) against every operation: documented answers only."""
    response = case.call()
    assert response.status_code < 500, response.text
    # Uploads must be real images, image ids must come from an upload and webhook URLs must answer
    # Avito's probe: valid by the schema alone is not enough there, so refusals are expected.
    lenient = case.operation.definition.raw.get("operationId") in (
        "uploadImages", "postSendImageMessage", "postWebhookV3"
    )
    case.validate_response(response, excluded_checks=[positive_data_acceptance] if lenient else None)
