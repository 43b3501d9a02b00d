"""What the fakes say about a scenario once its steps are over: the checks no step makes, and its first anomaly.

Every scenario gets them, whatever its steps found: an answer that carried a piece of a token, a workflow
execution that failed, a fault the scenario planted that never hit its request, a near miss the fake Avito
served (the gateway's mistake, named though the scenario went on), and a gateway process that died.
"""

from __future__ import annotations

from dataclasses import replace

from avito_harness.judge.diagnosis import REASON_DEFECTS, Anomaly, first_anomaly, served_near_misses
from avito_harness.judge.environment import USER
from avito_harness.judge.findings import Finding
from avito_harness.judge.leaks import leaked_piece

from .harness import Harness

__all__ = ["AFTER_STEPS", "anomaly_of", "findings_after_steps", "unique"]

AFTER_STEPS = "(after the steps)"


def anomaly_of(h: Harness) -> Anomaly | None:
    """The scenario's first anomalous hop, or what the gateway did wrong before it (its start, a kept answer)."""
    anomaly = first_anomaly(h.avito.journal(), h.avito.deliveries(account=USER), h.n8n.invalid(),
                            h.n8n.failed_executions())
    if anomaly is None and h.earlier is not None:
        anomaly = Anomaly(h.earlier.code, f"before the scenario (the gateway's start, or a call it keeps the answer "
                                          f"of): {h.earlier.summary}")
    return anomaly


#: Defects a scenario names in the workflows themselves: a failed n8n execution beside one is its evidence
WORKFLOW_DEFECTS = frozenset({"history_row_wrong", "workflow_send_refused", "workflow_dropped_message",
                              "voice_not_transcribed"})


def findings_after_steps(h: Harness, secrets: list[str]) -> list[Finding]:
    found = [Finding(REASON_DEFECTS[reason], summary, AFTER_STEPS) for reason, summary in
             served_near_misses(h.avito.journal())]
    if h.earlier is not None and h.earlier.code and not found:  # the gateway's start showed it, the scenario could not
        found.append(Finding(h.earlier.code, h.earlier.summary, "(before the scenario)"))
    for answer in h.answers:
        piece = leaked_piece(answer.headers + "\n" + answer.body, secrets)
        if piece is not None:
            where = "a header" if piece in answer.headers else "a body"
            found.append(Finding("secret_leaked", f"the gateway's answer carried {len(piece)} characters of an Avito "
                                 f"token or secret in {where}: {piece[:4]}… (masked)", AFTER_STEPS))
            break
    failed = h.n8n.failed_executions()
    if failed:
        summary = "; ".join(e["summary"] for e in failed[:3])
        named = next((n for n, f in enumerate(h.findings) if f.code in WORKFLOW_DEFECTS), None)
        if named is None:
            found.append(Finding("workflow_failed", summary, AFTER_STEPS))
        else:  # the failed execution is how that defect happened: its evidence, not a second defect
            h.findings[named] = replace(h.findings[named], message=f"{h.findings[named].message} (n8n: {summary})")
    unfired = [*h.avito.unfired_faults(), *h.n8n.unfired_faults()]
    if unfired:
        names = ", ".join(f"{f.get('name') or f['id']} on {f['route']}" for f in unfired)
        found.append(Finding("not_exercised", f"the scenario's fault never hit its request ({names}): what it was "
                             "written to test never happened, so it proves nothing (a refused token or another path "
                             "took the request)", AFTER_STEPS))
    crashed = h.env.crashed()
    if crashed is not None:
        found.append(Finding("gateway_crashed", crashed, AFTER_STEPS))
    return found


def unique(findings: list[Finding]) -> list[Finding]:
    """One finding per (code, what was seen): a near miss the gateway repeats is one defect."""
    seen: dict[tuple[str, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.code, f.message), f)
    return list(seen.values())
