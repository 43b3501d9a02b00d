"""Rate limits as behaviour: per-account per-minute windows, per operation, headers, Retry-After."""

from __future__ import annotations

from typing import Any

import pytest

from avito_harness.fakes.avito.ratelimit import RateLimiter, RateLimits
from tests.unit.conftest import USER, get_token

CHATS = f"/messenger/v2/accounts/{USER}/chats"


def _limit(api: Any, **limits: Any) -> None:
    assert api.patch(f"/_sim/accounts/{USER}/settings", json={"rate_limits": limits}).status_code == 200


def test_no_limit_and_no_headers_by_default(api: Any, auth: dict[str, str]) -> None:
    response = api.get(CHATS, headers=auth)
    assert "X-RateLimit-Limit" not in response.headers


def test_per_minute_limit_answers_429_like_avito(api: Any, auth: dict[str, str], clock: Any) -> None:
    _limit(api, per_minute=3)
    clock.set_time(1764590400)  # the start of a minute
    remaining = [api.get(CHATS, headers=auth).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = api.get(CHATS, headers=auth)
    assert limited.status_code == 429
    assert limited.json() == {"error": {"code": 429, "message": "Too Many Requests"}}
    assert limited.headers["X-RateLimit-Limit"] == "3" and "Retry-After" not in limited.headers
    clock.advance(60)
    assert api.get(CHATS, headers=auth).status_code == 200


def test_retry_after_when_enabled_says_when_the_window_ends(api: Any, auth: dict[str, str], clock: Any) -> None:
    _limit(api, per_minute=1, retry_after=True)
    clock.set_time(1764590400 + 45)
    api.get(CHATS, headers=auth)
    assert api.get(CHATS, headers=auth).headers["Retry-After"] == "15"


def test_per_operation_limit_leaves_other_operations_alone(api: Any, auth: dict[str, str]) -> None:
    _limit(api, per_operation={"getChatsV2": 1})
    assert api.get(CHATS, headers=auth).status_code == 200
    assert api.get(CHATS, headers=auth).status_code == 429
    assert api.get("/core/v1/accounts/self", headers=auth).status_code == 200


def test_limits_are_per_account(api: Any, auth: dict[str, str]) -> None:
    _limit(api, per_minute=1)
    other = api.post("/_sim/accounts", json={}).json()
    token = get_token(api, client_id=other["client_id"], client_secret=other["client_secret"])
    api.get(CHATS, headers=auth)
    assert api.get(CHATS, headers=auth).status_code == 429
    assert api.get(f"/messenger/v2/accounts/{other['user_id']}/chats", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_refused_requests_do_not_use_up_the_window() -> None:
    limiter, limits = RateLimiter(), RateLimits(per_minute=2)
    decisions = [limiter.hit(1, "op", limits, 0.0) for _ in range(5)]
    assert [d.allowed for d in decisions if d] == [True, True, False, False, False]
    assert limiter.hit(1, "op", limits, 60.0).allowed  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [{"per_minute": 0}, {"per_operation": {"x": 0}}, {"window": 0}, {"colour": 1}])
def test_bad_limits_are_refused(api: Any, bad: dict[str, Any]) -> None:
    assert api.patch(f"/_sim/accounts/{USER}/settings", json={"rate_limits": bad}).status_code == 400
