"""Checks that never stop a scenario: a Then step written with :func:`check` instead of pytest-bdd's ``then``
records its failure (with its defect code and the step) and lets the next check run, so a wrong error mapping
cannot hide "the send was posted four times". A Given or When step that fails stops the scenario (nothing after
it can run); the hooks in :mod:`.fixtures` record it too, with the checks it kept from running.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pytest_bdd import then

from avito_harness.judge.classify import classify
from avito_harness.judge.findings import Finding
from avito_harness.judge.safe_text import visible_line
from avito_harness.judge.verdict import CannotJudge

__all__ = ["NotEvaluated", "check", "finding_of", "needs"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class NotEvaluated(Exception):
    """A check that cannot be made because an earlier one found nothing to check (no message arrived)."""


def needs(value: T | None, what: str) -> T:
    """``value``, or :class:`NotEvaluated` naming what an earlier check should have provided."""
    if value is None:
        raise NotEvaluated(f"needs {what}, which an earlier step did not provide")
    return value


def finding_of(exc: BaseException, step: str) -> Finding:
    outcome = classify(exc)
    return Finding(outcome.defect or "unclassified", visible_line(str(exc) or type(exc).__name__, 800), step)


def check(pattern: Any, **options: Any) -> Callable[[F], F]:
    """``@then(pattern)`` for a check that records its failure and lets the scenario go on (the step must take the
    ``harness`` fixture). A check that cannot be made (:class:`CannotJudge`) still stops, as it must."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            harness = kwargs.get("harness")
            try:
                return func(*args, **kwargs)
            except CannotJudge:
                raise
            except NotEvaluated as missing:
                if harness is None:
                    raise
                harness.not_evaluated.append(f"{harness.step}: {missing}")
                return None
            except Exception as exc:  # noqa: BLE001 - any failure of a check is a finding of the scenario
                if harness is None:
                    raise
                harness.found(exc)
                return None

        then(pattern, stacklevel=2, **options)(recorded)
        return func

    return decorate
