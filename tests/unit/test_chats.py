"""Chat list and chat: Avito's defaults, filters, limits, account checks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest import USER, get_token, say

CHATS = f"/messenger/v2/accounts/{USER}/chats"


def test_default_lists_only_item_chats(api: Any, auth: dict[str, str]) -> None:
    chats = api.get(CHATS, headers=auth).json()["chats"]
    assert chats and all(c["id"].startswith("u2i-") for c in chats)
    every = api.get(CHATS, params={"chat_types": "u2i,u2u"}, headers=auth).json()["chats"]
    assert len(every) > len(chats)
    assert any(c["id"].startswith("u2u-") for c in every)


def test_repeated_chat_types_parameter_works_like_a_comma_list(api: Any, auth: dict[str, str]) -> None:
    repeated = api.get(f"{CHATS}?chat_types=u2i&chat_types=u2u", headers=auth).json()["chats"]
    comma = api.get(CHATS, params={"chat_types": "u2i,u2u"}, headers=auth).json()["chats"]
    assert [c["id"] for c in repeated] == [c["id"] for c in comma]


def test_item_chat_carries_item_context_and_both_users(api: Any, auth: dict[str, str]) -> None:
    chat = api.get(CHATS, headers=auth).json()["chats"][0]
    assert chat["context"]["type"] == "item"
    assert chat["context"]["value"]["user_id"] == USER
    assert USER in [u["id"] for u in chat["users"]] and len(chat["users"]) == 2
    assert chat["last_message"]["direction"] in ("in", "out")


def test_chat_with_new_message_moves_to_the_top(api: Any, auth: dict[str, str]) -> None:
    chats = api.get(CHATS, headers=auth).json()["chats"]
    last = chats[-1]["id"]
    say(api, last, "Ещё актуально?")
    assert api.get(CHATS, headers=auth).json()["chats"][0]["id"] == last


def test_unread_only_follows_chat_read(api: Any, auth: dict[str, str]) -> None:
    unread = api.get(CHATS, params={"unread_only": "true"}, headers=auth).json()["chats"]
    assert unread
    for chat in unread:
        assert api.post(f"/messenger/v1/accounts/{USER}/chats/{chat['id']}/read", headers=auth).json() == {"ok": True}
    assert api.get(CHATS, params={"unread_only": "true"}, headers=auth).json()["chats"] == []
    say(api, unread[0]["id"], "Алло?")
    again = api.get(CHATS, params={"unread_only": "true"}, headers=auth).json()["chats"]
    assert [c["id"] for c in again] == [unread[0]["id"]]


def test_item_ids_filter(api: Any, auth: dict[str, str]) -> None:
    chats = api.get(CHATS, headers=auth).json()["chats"]
    item_id = chats[0]["context"]["value"]["id"]
    only = api.get(CHATS, params={"item_ids": str(item_id)}, headers=auth).json()["chats"]
    assert only and all(c["context"]["value"]["id"] == item_id for c in only)
    assert api.get(CHATS, params={"item_ids": "1"}, headers=auth).json()["chats"] == []


def test_limit_and_offset_page_through(api: Any, auth: dict[str, str]) -> None:
    everything = [c["id"] for c in api.get(CHATS, headers=auth).json()["chats"]]
    page1 = [c["id"] for c in api.get(CHATS, params={"limit": 2}, headers=auth).json()["chats"]]
    page2 = [c["id"] for c in api.get(CHATS, params={"limit": 2, "offset": 2}, headers=auth).json()["chats"]]
    assert page1 + page2 == everything[:4]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 1001}, "offset"),
        ({"limit": "ten"}, "limit"),
        ({"chat_types": "x2y"}, "chat_types"),
        ({"item_ids": "abc"}, "item_ids"),
    ],
)
def test_out_of_range_parameters_get_a_validation_error_naming_the_field(
    api: Any, auth: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = api.get(CHATS, params=params, headers=auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and error["message"] == "Validation error"
    assert field in error["fields"]


def test_limits_at_the_edges_are_accepted(api: Any, auth: dict[str, str]) -> None:
    assert api.get(CHATS, params={"limit": 100, "offset": 1000}, headers=auth).status_code == 200
    assert api.get(CHATS, params={"limit": 1, "offset": 0}, headers=auth).status_code == 200


def test_get_chat_by_id_and_unknown_chat(api: Any, auth: dict[str, str]) -> None:
    chat = api.get(CHATS, headers=auth).json()["chats"][0]
    one = api.get(f"{CHATS}/{chat['id']}", headers=auth)
    assert one.status_code == 200 and one.json()["id"] == chat["id"]
    missing = api.get(f"{CHATS}/u2i-doesNotExist0000000000", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404


def test_chat_ids_with_tilde_work_url_encoded_or_not(api: Any, auth: dict[str, str], backend: Any) -> None:
    state = backend.account(USER)
    customer = state.add_customer("Пётр")
    chat = state.create_chat(customer.id, chat_type="u2u")
    chat.id = "u2u-AbCdEfGhIjKlMnOp~r_S12"
    state.chats = {chat.id: chat, **{k: v for k, v in state.chats.items() if v is not chat}}
    assert api.get(f"{CHATS}/u2u-AbCdEfGhIjKlMnOp~r_S12", headers=auth).status_code == 200
    assert api.get(f"{CHATS}/u2u-AbCdEfGhIjKlMnOp%7Er_S12", headers=auth).status_code == 200


def test_another_accounts_user_id_in_the_path_is_forbidden(api: Any, auth: dict[str, str]) -> None:
    api.post("/_sim/accounts", json={"user_id": 200000002})
    response = api.get("/messenger/v2/accounts/200000002/chats", headers=auth)
    assert response.status_code == 403


def test_two_accounts_never_see_each_other(api: Any) -> None:
    a = api.post("/_sim/accounts", json={"demo_data": True}).json()
    b = api.post("/_sim/accounts", json={"demo_data": True}).json()
    ta = get_token(api, client_id=a["client_id"], client_secret=a["client_secret"])
    tb = get_token(api, client_id=b["client_id"], client_secret=b["client_secret"])
    chats_a = api.get(f"/messenger/v2/accounts/{a['user_id']}/chats", params={"chat_types": "u2i,u2u"},
                      headers={"Authorization": f"Bearer {ta}"}).json()["chats"]
    chats_b = api.get(f"/messenger/v2/accounts/{b['user_id']}/chats", params={"chat_types": "u2i,u2u"},
                      headers={"Authorization": f"Bearer {tb}"}).json()["chats"]
    assert chats_a and chats_b
    assert not {c["id"] for c in chats_a} & {c["id"] for c in chats_b}
    foreign = api.get(f"/messenger/v2/accounts/{a['user_id']}/chats/{chats_b[0]['id']}",
                      headers={"Authorization": f"Bearer {ta}"})
    assert foreign.status_code == 404
    # b's token cannot be used on a's path
    assert api.get(f"/messenger/v2/accounts/{a['user_id']}/chats",
                   headers={"Authorization": f"Bearer {tb}"}).status_code == 403


def test_account_self(api: Any, auth: dict[str, str]) -> None:
    me = api.get("/core/v1/accounts/self", headers=auth).json()
    assert me["id"] == USER and me["phones"] == [me["phone"]]


def test_unknown_paths_get_avitos_404_and_legacy_paths_are_not_served(api: Any, auth: dict[str, str]) -> None:
    for path in ("/messenger/v1/webhooks", "/nothing-here", f"/messenger/v1/accounts/{USER}/chats"):
        response = api.get(path, headers=auth)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == 404


def test_wrong_method_is_405_naming_the_allowed_ones(api: Any, auth: dict[str, str]) -> None:
    response = api.request("DELETE", "/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert api.request("PUT", CHATS, headers=auth).headers["allow"] == "GET"


def test_volume_adds_chats_with_messages_and_the_list_pages_through_them(api: Any, auth: dict[str, str]) -> None:
    before = len(api.get(f"/_sim/accounts/{USER}").json()["chats"])
    made = api.post(f"/_sim/accounts/{USER}/volume", json={"chats": 250, "messages_per_chat": 3})
    assert made.status_code == 201 and made.json()["chats"] == before + 250
    first = api.get(CHATS, params={"limit": 100}, headers=auth).json()["chats"]
    second = api.get(CHATS, params={"limit": 100, "offset": 100}, headers=auth).json()["chats"]
    assert len(first) == len(second) == 100 and not {c["id"] for c in first} & {c["id"] for c in second}
    newest = first[0]["id"]
    assert len(api.get(f"/messenger/v3/accounts/{USER}/chats/{newest}/messages/", headers=auth).json()["messages"]) == 3
