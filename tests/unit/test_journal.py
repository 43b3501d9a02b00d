"""The journal: every request, filterable, secrets masked."""

from __future__ import annotations

from typing import Any

from avito_harness.fakes.journal import mask_secrets
from tests.unit.conftest import CLIENT, USER


def test_every_request_is_recorded_with_status_and_account(api: Any, auth: dict[str, str]) -> None:
    api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth)
    api.get(f"/messenger/v2/accounts/{USER}/chats/u2i-nope", headers=auth)
    entries = api.get("/_sim/journal").json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/token", 200),
        ("GET", f"/messenger/v2/accounts/{USER}/chats", 200),
        ("GET", f"/messenger/v2/accounts/{USER}/chats/u2i-nope", 404),
    ]
    assert entries[1]["account"] == USER
    assert entries[0]["account"] == USER  # the token request is the account whose credentials it carried
    api.post("/token", params={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"})
    assert api.get("/_sim/journal").json()["requests"][-1]["account"] is None  # unknown credentials: no account


def test_secrets_never_appear(api: Any, auth: dict[str, str]) -> None:
    api.post("/token", params={"grant_type": "client_credentials", **CLIENT})
    api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth)
    raw = api.get("/_sim/journal").text
    assert CLIENT["client_secret"] not in raw
    assert auth["Authorization"].split()[1] not in raw
    assert "Bearer ***" in raw


def test_filters(api: Any, auth: dict[str, str]) -> None:
    api.get(f"/messenger/v2/accounts/{USER}/chats/u2i-nope", headers=auth)
    assert len(api.get("/_sim/journal", params={"status": 404}).json()["requests"]) == 1
    assert len(api.get("/_sim/journal", params={"method": "post"}).json()["requests"]) == 1
    assert len(api.get("/_sim/journal", params={"path": "/messenger/*"}).json()["requests"]) == 1
    last = api.get("/_sim/journal").json()["requests"][-1]["id"]
    assert api.get("/_sim/journal", params={"since": last}).json()["requests"] == []
    api.delete("/_sim/journal")
    assert api.get("/_sim/journal").json()["requests"] == []


def test_json_bodies_are_kept_multipart_only_sized(api: Any, auth: dict[str, str]) -> None:
    api.post("/messenger/v3/webhook", json={"url": "http://127.0.0.1:9/h", "secret": "topsecret"}, headers=auth)
    api.post(f"/messenger/v1/accounts/{USER}/uploadImages", files={"uploadfile[]": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")}, headers=auth)
    hook, upload = api.get("/_sim/journal").json()["requests"][-2:]
    assert hook["body"]["url"] == "http://127.0.0.1:9/h" and hook["body"]["secret"] == "***"
    assert upload["body"]["multipart"] is True


def test_mask_secrets_is_recursive() -> None:
    masked = mask_secrets({"a": {"client_secret": "abcdefghijklmnop"}, "b": [{"token": "x"}], "c": "keep"})
    assert masked == {"a": {"client_secret": "***mnop"}, "b": [{"token": "***"}], "c": "keep"}
