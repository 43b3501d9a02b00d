"""The load run's verdict from what the fakes saw: each kind of loss, repeat and reordering is counted, and a run
that sent nothing never passes."""

from __future__ import annotations

from typing import Any

from avito_harness.load.judge import judge, percentile

SHOP, CHAT = 300000001, "u2u-1"


def _sent(n: int) -> list[dict[str, Any]]:
    return [{"kind": "inbound", "shop": SHOP, "chat": CHAT, "marker": f"{SHOP}/{CHAT}/m{i}", "status": 201}
            for i in range(n)] + [{"kind": "reply", "shop": SHOP, "chat": CHAT, "text": f"reply {i}", "status": 200,
                                   "seconds": 0.01 * (i + 1)} for i in range(n)]


def _delivery(i: int, at: float) -> dict[str, Any]:
    return {"time": at, "body": {"text": f"load {SHOP}/{CHAT}/m{i} t=100.0"}}


def _chat(order: list[int], replies: list[int]) -> dict[tuple[int, str], list[dict[str, Any]]]:
    customer = [{"direction": "in", "content": {"text": f"load {SHOP}/{CHAT}/m{i} t=100.0"}} for i in order]
    ours = [{"direction": "out", "content": {"text": f"reply {i}"}} for i in replies]
    return {(SHOP, CHAT): customer + ours}


def test_a_clean_run_passes_with_its_latencies() -> None:
    verdict = judge(_sent(3), [_delivery(i, 100.5 + i) for i in range(3)], _chat([0, 1, 2], [0, 1, 2]))
    assert verdict.passed and (verdict.sent, verdict.delivered, verdict.replies_sent) == (3, 3, 3)
    assert verdict.inbound_latency == {"p50": 1.5, "p95": 2.5, "p99": 2.5}
    assert verdict.per_shop_p99 == {str(SHOP): 2.5} and verdict.fairness == 1.0


def test_lost_repeated_and_reordered_messages_and_replies_are_each_counted() -> None:
    received = [_delivery(1, 101.0), _delivery(0, 102.0), _delivery(0, 103.0)]  # m2 lost, m0 twice, after m1
    verdict = judge(_sent(3), received, _chat([0, 1, 2], [0, 0, 2]))  # reply 1 lost, reply 0 posted twice
    assert not verdict.passed
    assert verdict.lost == [f"{SHOP}/{CHAT}/m2"] and verdict.duplicated == [f"{SHOP}/{CHAT}/m0"]
    assert verdict.order_violations == [f"chat {CHAT} of shop {SHOP}"]
    assert verdict.replies_lost == ["reply 1"] and verdict.replies_duplicated == ["reply 0"]


def test_refused_requests_are_errors_by_kind_and_a_run_that_sent_nothing_fails() -> None:
    sent = [{"kind": "inbound", "shop": SHOP, "chat": CHAT, "marker": "x", "status": 429},
            {"kind": "reply", "shop": SHOP, "chat": CHAT, "text": "r", "status": 503, "seconds": 0.1}]
    verdict = judge(sent, [], {})
    assert verdict.errors == {"inbound answered 429": 1, "reply answered 503": 1} and not verdict.passed


def test_percentile_is_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 99) == 99 and percentile([5.0], 50) == 5.0 and percentile([], 50) is None
