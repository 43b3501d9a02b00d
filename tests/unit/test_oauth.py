"""OAuth: the three grants, both /token spellings, form and query, errors, expiry, 401 vs 403."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest import CLIENT, USER, get_token


def test_client_credentials_gives_a_bearer_token_for_a_day(api: Any) -> None:
    body = api.post("/token", data={"grant_type": "client_credentials", **CLIENT}).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert "refresh_token" not in body and "scope" not in body


@pytest.mark.parametrize("path", ["/token", "/token/"])
def test_both_token_spellings_and_query_string_are_accepted(api: Any, path: str) -> None:
    as_form = api.post(path, data={"grant_type": "client_credentials", **CLIENT})
    as_query = api.post(path, params={"grant_type": "client_credentials", **CLIENT})
    assert as_form.status_code == as_query.status_code == 200


def test_token_works_on_the_messenger_api(api: Any) -> None:
    token = get_token(api)
    me = api.get("/core/v1/accounts/self", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == USER


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "sim-client-id"}, 400, "invalid_request"),
        ({"client_id": "sim-client-id", "client_secret": "sim-client-secret"}, 400, "invalid_request"),
        ({"grant_type": "password", **CLIENT}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", **CLIENT, "code": "made-up"}, 400, "invalid_grant"),
        ({"grant_type": "refresh_token", **CLIENT, "refresh_token": "made-up"}, 400, "invalid_grant"),
        ({"grant_type": "authorization_code", **CLIENT}, 400, "invalid_request"),
    ],
)
def test_bad_token_requests_get_an_oauth_error_not_a_token(api: Any, data: dict[str, str], status: int, error: str) -> None:
    response = api.post("/token", data=data)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "access_token" not in response.json()
    assert response.json()["error_description"]


def _code(api: Any) -> str:
    code: str = api.post(f"/_sim/accounts/{USER}/oauth/code").json()["code"]
    return code


def test_authorization_code_then_refresh_rotates_the_refresh_token(api: Any) -> None:
    first = api.post("/token", data={"grant_type": "authorization_code", **CLIENT, "code": _code(api)}).json()
    assert first["refresh_token"] and "messenger:read" in first["scope"].split(",")
    second = api.post("/token", data={"grant_type": "refresh_token", **CLIENT, "refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["access_token"] != first["access_token"]
    reused = api.post("/token", data={"grant_type": "refresh_token", **CLIENT, "refresh_token": first["refresh_token"]})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_a_code_works_once(api: Any) -> None:
    code = _code(api)
    assert api.post("/token", data={"grant_type": "authorization_code", **CLIENT, "code": code}).status_code == 200
    assert api.post("/token", data={"grant_type": "authorization_code", **CLIENT, "code": code}).status_code == 400


def test_a_code_expires_after_ten_minutes(api: Any, clock: Any) -> None:
    code = _code(api)
    clock.advance(601)
    assert api.post("/token", data={"grant_type": "authorization_code", **CLIENT, "code": code}).status_code == 400


def test_consent_page_redirects_back_with_code_and_state(api: Any) -> None:
    response = api.get(
        "/oauth",
        params={"response_type": "code", "client_id": "sim-client-id", "scope": "messenger:read",
                "state": "xyz", "redirect_uri": "http://127.0.0.1:9/cb"},
        follow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith("http://127.0.0.1:9/cb?code=sim_code_")
    assert response.headers["location"].endswith("&state=xyz")


def test_scoped_token_without_write_scope_cannot_send(api: Any) -> None:
    code = api.post(f"/_sim/accounts/{USER}/oauth/code", params={"scope": "messenger:read"}).json()["code"]
    token = api.post("/token", data={"grant_type": "authorization_code", **CLIENT, "code": code}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    chats = api.get(f"/messenger/v2/accounts/{USER}/chats", headers=headers)
    assert chats.status_code == 200
    chat_id = chats.json()["chats"][0]["id"]
    sent = api.post(f"/messenger/v1/accounts/{USER}/chats/{chat_id}/messages",
                    json={"type": "text", "message": {"text": "hi"}}, headers=headers)
    assert sent.status_code == 403


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer"])
def test_missing_or_unknown_token_is_401_in_avito_shape(api: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = api.get(f"/messenger/v2/accounts/{USER}/chats", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "Unauthorized"}}


def test_token_expires_on_the_virtual_clock(api: Any, auth: dict[str, str], clock: Any) -> None:
    url = f"/messenger/v2/accounts/{USER}/chats"
    clock.advance(86399)
    assert api.get(url, headers=auth).status_code == 200
    clock.advance(1)
    assert api.get(url, headers=auth).status_code == 401
    fresh = {"Authorization": f"Bearer {get_token(api)}"}
    assert api.get(url, headers=fresh).status_code == 200


def test_expired_token_answers_403_when_the_account_uses_the_403_variant(api: Any, auth: dict[str, str], clock: Any) -> None:
    assert api.patch(f"/_sim/accounts/{USER}/settings", json={"auth_error_status": 403}).status_code == 200
    clock.advance(86400)
    response = api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth)
    assert response.status_code == 403
    assert response.json() == {"error": {"code": 403, "message": "Forbidden"}}
    # an unknown token is still 401: only expiry follows the switch
    assert api.get(f"/messenger/v2/accounts/{USER}/chats", headers={"Authorization": "Bearer x"}).status_code == 401


def test_control_api_expires_tokens_now(api: Any, auth: dict[str, str]) -> None:
    assert api.post(f"/_sim/accounts/{USER}/tokens/expire").json()["expired"] >= 1
    assert api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth).status_code == 401
