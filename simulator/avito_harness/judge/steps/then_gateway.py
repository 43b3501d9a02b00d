"""Then steps about the gateway's own answers: subscription, monitoring, keys, CORS, sends, errors, limits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import parsers

from avito_harness.fakes.settings import WEBHOOK_PATH
from avito_harness.judge.bounded_http import RequestDeadlineHit
from avito_harness.judge.defects import expect
from avito_harness.judge.diagnosis import UNKNOWN_CHAT
from avito_harness.judge.environment import USER
from avito_harness.judge.leaks import leaked_piece
from avito_harness.judge.step_params import PARAM_TYPES
from avito_harness.stack.gateway_process import GatewayProcessError
from avito_harness.stack.serve import serve_in_thread

from .checks import check, needs
from .harness import Harness
from .observe import probe_refused, subscriptions_asked

__all__: list[str] = []  # step definitions only: pytest-bdd finds them, nothing is imported from here


@check("Avito's probe of the webhook URL passed")
def _(harness: Harness) -> None:
    response = needs(harness.response, "the gateway's answer")
    subscribe = subscriptions_asked(harness)
    expect(response.status_code not in (404, 405) or subscribe, "not_implemented",
           f"POST /api/webhook/subscribe answered {response.status_code}: the gateway does not serve it")
    expect(subscribe, "unclassified", f"the gateway answered {response.status_code} {response.text[:200]} and never "
           "asked Avito to subscribe (no POST /messenger/v3/webhook reached Avito)")
    refused = probe_refused(harness)
    expect(not refused, "probe_not_200", "Avito's {} probe of the webhook URL did not get 200: "
           f"{(subscribe[-1].get('extra') or {}).get('hint') or (subscribe[-1].get('extra') or {}).get('error', '')}")
    expect(response.status_code == 200, "unclassified", f"{response.status_code} {response.text[:300]}")


@check("Avito lists the gateway's webhook URL")
def _(harness: Harness) -> None:
    subscriptions = harness.avito.account(USER)["subscriptions"]
    ours = [s for s in subscriptions if str(s.get("url", "")).startswith(harness.gateway_url + WEBHOOK_PATH)]
    assert ours and ours[0].get("version") == "3", subscriptions  # a secret path segment may follow


@check("the gateway answered every one of them 200")
def _(harness: Harness) -> None:
    bad = [f"{a.status_code} {a.text[:80]}" for a in harness.seen.webhook_answers if a.status_code != 200]
    expect(not bad, "webhook_not_200", f"a broken webhook body was answered {bad}; Avito wants 200 for every delivery "
           "(a refused one is recorded, not bounced: Avito would retry it, then unsubscribe the URL)")


@check(parsers.parse("/info shows {requests:Positive} requests per {window:Positive} seconds and "
                      "{connections:Positive} connections", extra_types=PARAM_TYPES))
def _(harness: Harness, requests: int, window: int, connections: int) -> None:
    answer = harness.http.get(f"{harness.gateway_url}/info")
    try:
        info = answer.json()
    except ValueError:
        info = None
    expect(isinstance(info, dict), "contract_violation", f"/info answered {answer.status_code} {answer.text[:200]}")
    assert isinstance(info, dict)
    for key in ("rate_limit_requests", "rate_limit_window", "max_connections", "avito_user_id"):
        expect(key in info, "contract_violation", f"/info lacks {key}")
    if harness.mode == "embedded":
        assert (info["rate_limit_requests"], info["rate_limit_window"], info["max_connections"]) == (
            requests, window, connections)


@check("/api/token shows a token without revealing it")
def _(harness: Harness) -> None:
    chats = harness.api.get("/api/chats")  # a call that needs a token Avito knows now
    expect(chats.status_code == 200, "unclassified", f"GET /api/chats answered {chats.status_code}: {chats.text[:200]}")
    response = harness.api.get("/api/token")
    assert response.status_code == 200, response.text
    issued = harness.avito.tokens(USER)
    assert issued, "the gateway never asked Avito for a token"
    piece = leaked_piece(response.text + " ".join(response.headers.values()), issued)
    expect(piece is None, "secret_leaked", f"/api/token shows {len(piece or '')} characters of the access token")


def near_keys(key: str) -> dict[str, str]:
    """Wrong keys a careless comparison takes for the key: each is a finding of its own if the gateway serves it."""
    near = {"a wrong key": "wrong-" + key[::-1], "the key without its last character": key[:-1],
            "the key with one character more": key + "0", "the key in the other case": key.swapcase(),
            "the key's first 8 characters": key[:8]}
    return {what: value for what, value in near.items() if value and value != key}


@check("the API refuses calls without a valid key")
def _(harness: Harness) -> None:
    """Keys are compared whole and exactly: not a prefix, not case-blind, not the first characters."""
    tries: dict[str, dict[str, str]] = {"without a key": {}}
    tries.update({what: {"X-API-Key": value} for what, value in near_keys(harness.api_key).items()})
    served = []
    for what, headers in tries.items():
        answer = harness.http.get(f"{harness.gateway_url}/api/chats", headers=headers)
        if answer.status_code != 401:
            served.append(f"{what} ({answer.status_code})")
    expect(not served, "api_key_not_enforced", f"GET /api/chats was not refused 401 with {', '.join(served)}")


@check("a page on another site cannot call the API with the user's credentials")
def _(harness: Harness) -> None:
    origin = "https://attacker.example"
    answer = harness.http.options(f"{harness.gateway_url}/api/chats", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"})
    allowed = answer.headers.get("access-control-allow-origin", "")
    credentials = answer.headers.get("access-control-allow-credentials", "").lower() == "true"
    expect(not (credentials and allowed in ("*", origin)), "cors_wildcard_credentials",
           f"a preflight from {origin} got allow-origin {allowed!r} with allow-credentials true: any web page a user "
           "opens may call the gateway's API as that user")


@check("a gateway started without API_KEY does not serve /api to anyone")
def _(harness: Harness, tmp_path: Path) -> None:
    if harness.mode == "url":
        pytest.skip("needs to start the gateway itself: run with --gateway-cmd")
    if harness.mode == "embedded":
        try:
            app = harness.env.embedded_app("", tmp_path / "no-key")
        except GatewayProcessError:
            return  # refuses to start: nothing is served
        served = serve_in_thread(app, name="gateway-no-key")
        try:
            status = harness.http.get(f"{served.url}/api/chats").status_code
        finally:
            served.stop()
    else:
        process = harness.env.gateway_without_key()
        try:
            process.start()
        except GatewayProcessError:
            return  # exited or never answered: it refuses to run open
        try:
            status = harness.http.get(f"{process.url}/api/chats").status_code
        finally:
            process.stop()
    expect(status == 401, "api_open_without_key", f"started with API_KEY empty, GET /api/chats without a key answered "
           f"{status}: anyone who can reach the port can read and send as the seller")


@check("the gateway answers 200 with the sent message's id")
def _(harness: Harness) -> None:
    response = needs(harness.response, "the gateway's answer")
    expect(response.status_code == 200, harness.send_defect, f"{response.status_code} {response.text[:300]}")
    body = response.json()
    expect(body.get("success") is True and (body.get("response") or {}).get("id"), "contract_violation", str(body))
    ids = [m["id"] for m in harness.avito.chat(USER, harness.chat_id)["messages"]]
    expect(body["response"]["id"] in ids, "contract_violation", "the id in the answer is not a message in the chat")


@check(parsers.parse('the gateway answers {status:d} with code "{code}"'))
def _(harness: Harness, status: int, code: str) -> None:
    """SPEC's form for an Avito error is {"success": false, "error": "Avito API Error N: ..."}; the status and
    the code are ours (--profile full)."""
    response = needs(harness.response, "the gateway's answer")
    body = _json_object(response)
    expect(body.get("success") is False and isinstance(body.get("error"), str), harness.send_defect,
           f"SPEC's error form is {{\"success\": false, \"error\": \"...\"}}: {_differs(body, response)}")
    if harness.full:
        expect((response.status_code, body.get("code")) == (status, code), harness.send_defect,
               f"expected {status} {code}, got {response.status_code} {response.text[:300]}")


@check("the gateway answers 400 in the documented error form")
def _(harness: Harness) -> None:
    response = needs(harness.response, "the gateway's answer")
    body = _json_object(response)
    spec_shaped = body.get("success") is False and isinstance(body.get("error"), str)
    status_ok = response.status_code == 400 if harness.full else 400 <= response.status_code < 500
    expect(status_ok and spec_shaped, "validation_not_spec_body",
           f"a send without text got {response.status_code} {response.text[:200]}; SPEC's form is a 4xx "
           '{"success": false, "error": "..."}' + (" (400 under --profile full)" if harness.full else ""))


def _most_in_a_window(times: list[float], window: float) -> int:
    """The most of these (sorted) moments that fall within one ``window``: what a limit per window counts."""
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _differs(body: dict[str, Any], response: httpx.Response) -> str:
    """Which of SPEC's fields differs, exactly."""
    if not body:
        return f"the answer is not a JSON object: {response.status_code} {response.text[:160]}"
    wrong = [f"success is {body.get('success')!r}"] if body.get("success") is not False else []
    wrong += [f"error is {body.get('error')!r}"] if not isinstance(body.get("error"), str) else []
    return "; ".join(wrong) + f" (answer {response.status_code} {response.text[:160]})"


@check(parsers.parse('the error says "{text}"'))
def _(harness: Harness, text: str) -> None:
    response = needs(harness.response, "the gateway's answer")
    expect(text in response.json().get("error", ""), harness.send_defect, response.text[:300])


@check(parsers.parse("the error is retryable: {answer}"))
def _(harness: Harness, answer: str) -> None:
    if not harness.full:
        return  # "retryable" is ours: SPEC does not promise it (--profile full judges it)
    response = needs(harness.response, "the gateway's answer")
    expect(response.json().get("retryable") is (answer == "yes"), harness.send_defect,
           f"retryable should be {answer == 'yes'}: {response.text[:300]}")


@check("the unknown chat is reported as not found")
def _(harness: Harness) -> None:
    if not harness.full:
        return  # SPEC names the bulk send, not its answer: the chats it reached are what --profile seed judges
    body = needs(harness.response, "the gateway's answer").json()
    (failed,) = [r for r in body["results"] if not r.get("success")]
    assert failed["chat_id"] == UNKNOWN_CHAT and "404" in failed["error"]
    assert body["failed"] == 1 and body["success"] is False


@check("the last one is answered 429 with Retry-After")
def _(harness: Harness) -> None:
    answers = harness.seen.statuses
    statuses = [r.status_code for r in answers]
    expect(statuses[:100] == [200] * 100, "rate_limit_too_strict", "refused before the 100th request")
    last = answers[-1]
    expect(last.status_code == 429, "rate_limit_not_enforced", f"the 101st request got {last.status_code}")
    assert int(last.headers["Retry-After"]) > 0
    assert last.json()["error"] == "Rate limit exceeded, try again later"


@check("one more request is answered 429 with Retry-After")
def _(harness: Harness) -> None:
    """Under --profile full our form: the request past the limit is refused, 429 with Retry-After. Under seed a
    gateway may hold it until the window opens instead: what is judged is that no more than the limit reached
    Avito in the window, and that a held request was answered."""
    seen, limit = harness.seen, harness.seen.limit
    statuses = seen.statuses
    refused = bool(statuses) and statuses[-1].status_code == 429
    served = len(statuses) - (1 if refused else 0)
    calls = sorted(float(e["seen_at"]) for e in harness.avito.journal(method="GET") if e["id"] > seen.spent_from
                   and "/chats" in e["path"] and e.get("status") == 200)
    reached = _most_in_a_window(calls, seen.window)
    expect(not seen.held_past_deadline, "rate_limit_never_resets", f"the request past the limit was held longer than "
           f"the {harness.bounds.request_timeout:g} s request deadline: the window ({seen.window:g} s) never reopened")
    expect(served >= limit or seen.held_past_deadline, "rate_limit_too_strict",
           f"refused after {served} requests; /info announces {limit}")
    if harness.full or refused:
        expect(served <= limit, "rate_limit_not_enforced",
               f"{served} requests in a row were served; /info announces {limit} per {seen.window:g} s")
        last = statuses[-1]
        expect(not harness.full or last.headers.get("Retry-After", "").isdigit(), "rate_limit_not_enforced",
               "the 429 has no Retry-After")
        error = _json_object(last).get("error")
        expect(error == "Rate limit exceeded, try again later" or (not harness.full and isinstance(error, str)),
               "contract_violation", last.text[:200])
        return
    held = seen.last_wait >= min(seen.window, 1.0) * 0.5
    expect(reached <= limit and held, "rate_limit_not_enforced",
           f"{served} requests were served at once and {reached} reached Avito within one window; /info announces {limit} per "
           f"{seen.window:g} s (a gateway may hold what is over its limit, but not let it through)")


@check("after the window, steady requests are served again")
def _(harness: Harness) -> None:
    """A limiter must forget requests older than its window even when traffic never stops."""
    window = harness.seen.window
    step = window / 4
    served_at = None
    for n in range(1, math.ceil(2 * window / step) + 1):
        harness.pass_time(step)
        try:
            answered = harness.api.get("/api/chats").status_code
        except RequestDeadlineHit:  # held past the deadline: the limiter holds it and never reopens
            break
        if answered == 200:
            served_at = n * step
            break
    expect(served_at is not None, "rate_limit_never_resets", f"one request every {step:g} s (a quarter of the limit) "
           f"was still refused {2 * window:g} s after the limit was reached: the window never closes")
