"""One scenario's view of the run: the stack, the gateway under test, bounded clients, what happened so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from avito_harness.judge.bounded_http import Bounds
from avito_harness.judge.classify import classify
from avito_harness.judge.diagnosis import Anomaly
from avito_harness.judge.environment import USER, Environment
from avito_harness.judge.findings import Finding
from avito_harness.judge.verdict import CannotJudge, Category
from avito_harness.waiting import pause

from .checks import finding_of

__all__ = ["Answer", "Harness", "Scenario"]


@dataclass(frozen=True)
class Answer:
    """An answer of the gateway, kept for the checks after the scenario (leaks, spent limits)."""

    status: int
    headers: str
    body: str


@dataclass
class Scenario:
    """What steps hand on to later steps, by name (a typo is an AttributeError in the type check, not at run time)."""

    photo: dict[str, Any] | None = None  # the photo message the customer sent
    written: list[str] = field(default_factory=list)  # texts the customer or the seller wrote in the chat
    webhook_answers: list[httpx.Response] = field(default_factory=list)
    bulk_chats: list[str] = field(default_factory=list)
    statuses: list[httpx.Response] = field(default_factory=list)  # answers to a burst of requests
    limit: int = 0  # the rate limit the gateway announced
    window: float = 0.0  # and its window, seconds
    spent_from: int = 0  # the fake Avito's journal id before the limit was spent
    last_wait: float = 0.0  # seconds the last of those requests took (a gateway may hold it until the window opens)
    held_past_deadline: bool = False  # the gateway held a request past the request deadline
    retry_after: float = 0.0  # the Retry-After Avito's planted 429 asked for
    message: dict[str, Any] | None = None  # the normalized message the last check looked at
    operator: dict[str, Any] | None = None  # the operator's answer as the flows returned it
    appeal: dict[str, Any] | None = None
    sent_text: str | None = None  # a text n8n sent through the gateway, to find in the chat


@dataclass
class Harness:
    env: Environment
    gateway_url: str
    api_key: str
    bounds: Bounds
    api: httpx.Client  # the gateway's API with the key
    http: httpx.Client  # the gateway without a key (health, info, webhooks, refusals)
    chat_id: str = ""
    response: httpx.Response | None = None
    customer_messages: int = 0
    seen: Scenario = field(default_factory=Scenario)
    answers: list[Answer] = field(default_factory=list)
    #: what a failed send check means in this scenario (a Given step may say: an expired token, a lost answer)
    send_defect: str = "send_failed"
    #: (at seconds of scenario time, action): things that happen while time passes (n8n comes back)
    timers: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    elapsed: float = 0.0
    #: the first anomaly of what the gateway did before this scenario (since the last one ended), if any
    earlier: Anomaly | None = None
    step: str = ""  # the step running now
    findings: list[Finding] = field(default_factory=list)  # every defect found so far
    not_evaluated: list[str] = field(default_factory=list)  # checks a failed Given or When step kept from running
    cannot_judge: CannotJudge | None = None  # a step that could not be made: the scenario is not judged

    @property
    def mode(self) -> str:
        return self.env.mode

    @property
    def full(self) -> bool:
        """``--profile full``: our gateway's extensions are judged too, not only what SPEC promises."""
        return self.env.options.profile == "full"

    @property
    def forward_wait(self) -> float:
        """Real seconds a forward may take to show at n8n: a real n8n on a busy machine answers each forward in
        seconds (30 s was once not enough with a second suite on the same 2 cores), and a gateway that keeps a
        chat's order waits for that answer before the next (not a loss)."""
        return 60.0 if self.env.options.n8n == "real" else 10.0

    @property
    def stack(self) -> Any:
        return self.env.stack

    @property
    def avito(self) -> Any:
        return self.env.stack.avito

    @property
    def n8n(self) -> Any:
        return self.env.stack.n8n

    def chat_texts(self, chat_id: str | None = None) -> list[str]:
        messages = self.avito.chat(USER, chat_id or self.chat_id)["messages"]
        return [m["content"].get("text", "") for m in messages]

    def send(self, text: str, key: str | None = None, chat_id: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        self.response = self.api.post("/api/messages/send", json={"chat_id": chat_id or self.chat_id, "text": text},
                                      headers=headers)
        return self.response

    def record(self, response: httpx.Response) -> None:
        """Every answer of the gateway, for the checks after the scenario."""
        response.read()
        self.answers.append(Answer(response.status_code, " ".join(f"{k}: {v}" for k, v in response.headers.items()),
                                   response.text))

    @property
    def limited(self) -> bool:
        """The gateway refused something with 429 in this scenario: its window is spent for the next one."""
        return any(a.status == 429 for a in self.answers)

    def found(self, exc: BaseException) -> None:
        """A check failed: kept, and the scenario goes on."""
        self.findings.append(finding_of(exc, self.step))

    def stopped(self, exc: BaseException, step: str, remaining: list[str]) -> None:
        """A step failed that the scenario cannot go on without: what it found, and which checks did not run."""
        outcome = classify(exc)
        if isinstance(exc, CannotJudge):
            self.cannot_judge = exc
        elif outcome.kind == "not_judged":
            self.cannot_judge = CannotJudge(outcome.category or Category.NOT_JUDGED, f"{step}: {outcome.reason}")
        else:
            self.findings.append(finding_of(exc, step))
        self.not_evaluated = remaining

    def pass_time(self, seconds: float) -> None:
        """Time passes for the gateway: the shared virtual clock for ours, real time for a foreign one."""
        if self.mode == "embedded":
            self.stack.advance(seconds)
        else:
            pause(seconds, budget=self.bounds, what="the gateway's own time")
        self.elapsed += seconds
        for due in [t for t in self.timers if t[0] <= self.elapsed]:
            self.timers.remove(due)
            due[1]()
