"""The first anomalous hop of a scenario, and failures grouped into root causes for the report."""

from __future__ import annotations

from typing import Any

from avito_harness.judge.diagnosis import first_anomaly, path_shape
from avito_harness.judge.report import root_causes
from avito_harness.judge.results import ScenarioResult

BASIC_HINT = "client_id and client_secret came as HTTP Basic (Authorization header); Avito documents them as form fields"


def _entry(path: str, status: int, *, at: float, method: str = "POST", fault: str | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"method": method, "path": path, "status": status, "fault": fault, "extra": extra, "seen_at": at}


def test_token_by_basic_auth_is_named_with_avitos_answer_and_the_hint() -> None:
    journal = [_entry("/token", 400, at=1.0, hint=BASIC_HINT, reason="token_basic_auth",
                      error='{"error":"invalid_request","error_description":"missing parameter(s): client_id"}'),
               _entry("/messenger/v3/webhook", 401, at=2.0)]
    found = first_anomaly(journal, [], [])
    assert found is not None and found.code == "token_basic_auth"
    assert "POST /token answered 400 invalid_request: missing parameter(s): client_id" in found.summary
    assert "HTTP Basic" in found.summary


def test_another_api_version_is_named_by_the_path_avito_serves() -> None:
    journal = [_entry("/messenger/v2/accounts/7/chats/u2i-abc/messages", 404, at=1.0, reason="other_api_version",
                      hint="no such path at Avito; Avito serves POST /messenger/v1/accounts/{user_id}/chats/{chat_id}/messages")]
    found = first_anomaly(journal, [], [])
    assert found is not None and found.code == "wrong_api_version"
    assert "/messenger/v2/accounts/{user_id}/chats/{chat_id}/messages" in found.summary


def test_what_the_scenario_caused_on_purpose_is_not_an_anomaly() -> None:
    journal = [_entry("/messenger/v1/accounts/7/chats/u2i-x/messages", 500, at=1.0, fault="server_500"),
               _entry("/messenger/v2/accounts/7/chats", 401, at=2.0, method="GET", reason="token_expired",
                      hint="the token expired; a client gets a new one from /token"),
               _entry("/messenger/v1/accounts/7/chats/u2i-unknownChat0000000000/messages", 404, at=3.0)]
    assert first_anomaly(journal, [], []) is None


def test_the_earliest_anomaly_wins_across_journal_and_webhooks() -> None:
    journal = [_entry("/messenger/v1/accounts/7/chats/u2i-x/messages", 400, at=5.0)]
    deliveries = [{"status": 500, "ok": False, "seen_at": 2.0}]
    found = first_anomaly(journal, deliveries, [])
    assert found is not None and "webhook delivery answered 500" in found.summary and found.code is None
    assert first_anomaly([], [], [{"schema_errors": ["media/voice_url: None is not of type 'string'"]}]) is not None


def test_codes_come_from_the_recorded_reason_never_from_the_words() -> None:
    """Rewording a hint or an error changes no defect code; a reason alone names one."""
    reworded = [_entry("/token", 400, at=1.0, hint="Basic? No: put them in the form body", reason="token_basic_auth"),
                _entry("/messenger/v3/webhook", 400, at=2.0, reason="probe_refused", error='{"error": {"code": 400}}')]
    assert first_anomaly(reworded[:1], [], []).code == "token_basic_auth"  # type: ignore[union-attr]
    assert first_anomaly(reworded[1:], [], []).code == "probe_not_200"  # type: ignore[union-attr]
    words_only = [_entry("/token", 400, at=1.0, hint=BASIC_HINT),
                  _entry("/messenger/v2/accounts/7/chats", 404, at=2.0, method="GET", hint="Avito serves GET ...")]
    assert first_anomaly(words_only, [], []).code == "token_request_refused"  # type: ignore[union-attr]
    assert first_anomaly(words_only[1:], [], []).code is None  # type: ignore[union-attr]
    send = _entry("/messenger/v1/accounts/7/chats/u2i-x/messages", 400, at=1.0, reason="validation_failed",
                  fields=["type"])
    assert first_anomaly([send], [], []).code == "send_without_type"  # type: ignore[union-attr]


def test_path_shape_hides_ids() -> None:
    assert path_shape("/messenger/v3/accounts/42/chats/u2i-Ab_1/messages/") == \
        "/messenger/v3/accounts/{user_id}/chats/{chat_id}/messages/"


def test_root_causes_group_failures_by_what_the_wire_showed_biggest_first() -> None:
    token = "gateway -> Avito: POST /token answered 400 invalid_request"
    results = [ScenarioResult(f"s{n}", "1 webhook", outcome="failed", defect="token_basic_auth", anomaly=token,
                              error="could not subscribe") for n in range(3)]
    results += [ScenarioResult("voice", "2 inbound", outcome="failed", defect="media_link_missing", error="no voice_url"),
                ScenarioResult("ok", "2 inbound", outcome="passed")]
    causes = root_causes(results)
    assert [(code, len(members)) for code, _, members in causes] == [("token_basic_auth", 3), ("media_link_missing", 1)]
    assert causes[0][1] == token and causes[1][1] == "no voice_url"


def test_the_report_masks_every_secret_the_steps_registered_and_shows_control_characters() -> None:
    from types import SimpleNamespace

    from avito_harness.judge.collector import Collector
    from avito_harness.judge.steps.fixtures import SECRETS

    token = "sim_at_0123456789abcdefghij0123456789abcdef"
    collector = Collector([], None, run_timeout=60)  # type: ignore[arg-type]
    collector.config = SimpleNamespace(stash={SECRETS: {token}})  # type: ignore[assignment]
    collector.results[("f", "x", None)] = ScenarioResult(
        "x", "1 webhook", outcome="failed", error=f"assert '{token[:20]}' == ''",
        transcript=f"GET /api/token -> 200 {token}", extra={"gateway output": f"token={token[-12:]}\x1b[2J43 passed"})
    (result,) = collector.final_results()
    text = f"{result.error} {result.transcript} {result.extra}"
    assert token[:8] not in text and token[-8:] not in text and text.count("***") == 3
    assert "\x1b" not in text and "\\x1b[2J43 passed" in result.extra["gateway output"]
