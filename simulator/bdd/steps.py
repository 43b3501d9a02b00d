"""The acceptance run's step library: the stack, the gateway under test and every step phrase, as a pytest plugin.

``avito-harness run`` loads it; in your own pytest suite, ``pytest -p avito_harness.bdd.steps`` (or
``pytest_plugins = ["avito_harness.bdd.steps"]`` in your top-level conftest.py) gives your pytest-bdd feature
files the same steps, with ``--avito-gateway-cmd "CMD {port}"`` or ``--avito-gateway-url URL`` to run them
against your gateway. ``avito-harness steps`` lists every phrase.

One session stack (fake Avito, fake n8n with flows, fake STT) on a frozen
clock. Per scenario: a reset with a scenario-specific seed (fresh account and
ids; tokens Avito already issued stay valid, so a gateway that runs on is
tested as it runs), and the gateway under test: ours in-process on the same
clock (default), a running one (``--gateway-url``), or one the harness starts
(``--gateway-cmd``). Scenarios tagged ``@gateway_clock`` need the gateway to
run on the harness clock and are skipped for external gateways, with the
reason; each has a real-time variant that runs against any gateway.

A failed check names the defect it found (:class:`avito_harness.defects.Defect`);
after every scenario the harness also checks what no step asks: that every
fault the scenario planted hit its request, that no answer of the gateway
carried a piece of a token or secret, and what the first anomalous hop was.
"""

from __future__ import annotations

import math
import os
import shlex
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from avito_harness.acceptance import SECRETS
from avito_harness.avito.media import png_bytes
from avito_harness.defects import Defect, expect
from avito_harness.diagnosis import first_anomaly
from avito_harness.gateway_process import GatewayProcess, free_port
from avito_harness.leaks import leaked_piece, mask
from avito_harness.n8n.workflows import from_seller
from avito_harness.postgres import PostgresError
from avito_harness.realn8n.mapping import MappingError
from avito_harness.realn8n.pipeline import RealN8n, start_behind
from avito_harness.realn8n.server import N8nServerError
from avito_harness.remote import RemoteStack, parse_stack_urls
from avito_harness.serve import ServedApp, serve_in_thread
from avito_harness.settings import SimSettings
from avito_harness.stack import Stack

__all__ = ["EMBEDDED_GROUP", "Harness", "SHORT_WINDOWS", "USER", "pytest_bdd_step_error",
           "pytest_runtest_makereport"]

USER = 100000001
EMBEDDED_GROUP = "avito_harness.embedded_gateway"
SETTLE = 0.5  # real seconds a foreign gateway gets to forward anything more
REAL_BATCH_WINDOW = 2.0  # real seconds: the Universal Batcher's window when n8n itself runs the workflows
#: A gateway the harness starts gets short windows, so real-time checks stay short (a foreign gateway may
#: ignore names it does not know; the checks read the limits it announces on /info).
SHORT_WINDOWS = {"RATE_LIMIT_REQUESTS": "60", "RATE_LIMIT_WINDOW": "1", "OUTBOX_RETRY_MIN": "0.5", "OUTBOX_RETRY_MAX": "2",
                 "RETRY_MIN_WAIT": "0.1", "RETRY_MAX_WAIT": "0.5"}


# Its options (--avito-gateway-cmd, --avito-gateway-url, ...) belong to the always-installed plugin
# avito_harness.pytest_plugin, so they parse however a project loads this module.


@dataclass
class Harness:
    stack: Any  # Stack, or RemoteStack for containers
    gateway_url: str
    api_key: str
    mode: str
    api: httpx.Client
    chat_id: str = ""
    response: httpx.Response | None = None
    customer_messages: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (headers, body) of every gateway answer
    #: what a failed send check means in this scenario (a Given step may say: an expired token, a lost answer)
    send_defect: str = "send_failed"
    #: (at seconds of scenario time, action): things that happen while time passes (n8n comes back)
    timers: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def avito(self) -> Any:
        return self.stack.avito

    @property
    def n8n(self) -> Any:
        return self.stack.n8n

    def chat_texts(self, chat_id: str | None = None) -> list[str]:
        messages = self.avito.chat(USER, chat_id or self.chat_id)["messages"]
        return [m["content"].get("text", "") for m in messages]

    def send(self, text: str, key: str | None = None, chat_id: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        self.response = self.api.post("/api/messages/send", json={"chat_id": chat_id or self.chat_id, "text": text},
                                      headers=headers)
        return self.response

    def record(self, response: httpx.Response) -> None:
        """Every answer of the gateway, for the leak check after the scenario."""
        response.read()
        self.answers.append((" ".join(f"{k}: {v}" for k, v in response.headers.items()), response.text))

    def pass_time(self, seconds: float) -> None:
        """Time passes for the gateway: the shared virtual clock for ours, real time for a foreign one."""
        if self.mode == "embedded":
            self.stack.advance(seconds)
        else:
            threading.Event().wait(seconds)
        self.elapsed += seconds
        for due in [t for t in self.timers if t[0] <= self.elapsed]:
            self.timers.remove(due)
            due[1]()


# --- the stack and the gateway --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def gateway_mode(pytestconfig: pytest.Config) -> str:
    if pytestconfig.getoption("--avito-gateway-url"):
        return "url"
    if pytestconfig.getoption("--avito-gateway-cmd"):
        return "cmd"
    return "embedded"


@pytest.fixture(scope="session")
def acceptance_stack(pytestconfig: pytest.Config, gateway_mode: str) -> Iterator[Any]:
    """Free ports when the harness starts the gateway (embedded or --gateway-cmd: it is told the URLs); for a
    gateway already running (--gateway-url), the ports `avito-harness sim` prints."""
    remote = pytestconfig.getoption("--avito-stack-url")
    if remote:
        fakes = RemoteStack(parse_stack_urls(remote))
        yield fakes
        fakes.close()
        return
    overrides: dict[str, Any] = {"clock": "frozen", "n8n_mode": "record"}
    if gateway_mode in ("embedded", "cmd"):
        overrides.update(avito_port=0, n8n_port=0, stt_port=0)
    with Stack.start(SimSettings.from_env(os.environ, **overrides)) as stack:
        real = _real_n8n(pytestconfig, stack) if pytestconfig.getoption("--avito-n8n") == "real" else None
        try:
            yield stack
        finally:
            if real is not None:
                real.stop()


def _real_n8n(pytestconfig: pytest.Config, stack: Stack) -> RealN8n:
    """n8n itself with BatteryCRM's workflows (or the user's) over a real Postgres, behind the fake n8n."""
    opt = pytestconfig.getoption
    try:
        return start_behind(stack, gateway_api_key=opt("--avito-gateway-api-key") or "test-api-key",
                            batch_window=REAL_BATCH_WINDOW, n8n_url=opt("--avito-n8n-url"),
                            n8n_api_key=opt("--avito-n8n-api-key"), postgres_url=opt("--avito-postgres-url"),
                            workflows=opt("--avito-workflows"), workflows_map=opt("--avito-workflows-map"))
    except (N8nServerError, PostgresError, MappingError) as exc:
        pytest.exit(f"real n8n could not start: {exc}", returncode=3)


def _command(pytestconfig: pytest.Config, port: int) -> list[str]:
    return [part.replace("{port}", str(port)) for part in shlex.split(pytestconfig.getoption("--avito-gateway-cmd"))]


def _process(pytestconfig: pytest.Config, stack: Any, *, api_key: str) -> GatewayProcess:
    s, port = stack.settings, free_port()
    return GatewayProcess(
        avito_url=stack.urls["avito"], n8n_webhook_url=f"{stack.urls['n8n']}/webhook/avito",
        client_id=s.avito_client_id, client_secret=s.avito_client_secret, user_id=s.avito_user_id,
        api_key=api_key, port=port, command=_command(pytestconfig, port), extra_env=dict(SHORT_WINDOWS),
        require_healthy=False,
    )


@pytest.fixture(scope="session")
def gateway_process(pytestconfig: pytest.Config, acceptance_stack: Any, gateway_mode: str) -> Iterator[GatewayProcess | None]:
    if gateway_mode != "cmd":
        yield None
        return
    process = _process(pytestconfig, acceptance_stack, api_key=pytestconfig.getoption("--avito-gateway-api-key") or "test-api-key")
    process.start()
    yield process
    process.stop()


def _embedded_app(stack: Any, api_key: str, data_dir: Path) -> Any:
    """The embedded gateway in-process on the harness clock, found by its entry point (the harness never imports
    a gateway; ours registers ``avito_harness.embedded_gateway`` / ``ours``)."""
    found = [ep for ep in entry_points(group=EMBEDDED_GROUP) if ep.name == "ours"]
    if not found:
        pytest.fail(f"no embedded gateway is installed (entry point {EMBEDDED_GROUP}/ours): use --avito-gateway-cmd")
    factory = found[0]
    # connection_timeout: the one scenario that waits it out stays short, and a loaded CI machine answering in
    # half a second is not mistaken for Avito hanging
    settings = {
        "api_key": api_key, "avito_client_id": stack.settings.avito_client_id,
        "avito_client_secret": stack.settings.avito_client_secret, "avito_user_id": USER,
        "avito_api_base_url": stack.urls["avito"], "n8n_webhook_url": f"{stack.urls['n8n']}/webhook/avito",
        "data_dir": data_dir, "connection_timeout": 2, "max_retries": 1, "retry_min_wait": 1, "retry_max_wait": 4,
        "outbox_poll_interval": 0.01,
    }
    return factory.load()(settings, stack.clock)


@pytest.fixture
def harness(request: pytest.FixtureRequest, acceptance_stack: Any, gateway_mode: str,
            gateway_process: GatewayProcess | None, tmp_path: Path) -> Iterator[Harness]:
    if gateway_mode != "embedded" and request.node.get_closest_marker("gateway_clock"):
        pytest.skip("needs the gateway to run on the harness's virtual clock; only the embedded gateway does "
                    "(its real-time variant runs against any gateway)")
    if gateway_mode != "embedded" and request.node.get_closest_marker("gateway_timeout"):
        pytest.skip("would wait out the external gateway's CONNECTION_TIMEOUT in real time")
    stack = acceptance_stack
    stack.reset(seed=zlib.crc32(request.node.nodeid.encode()))
    served: ServedApp | None = None
    api_key = request.config.getoption("--avito-gateway-api-key") or "test-api-key"
    if gateway_mode == "embedded":
        served = serve_in_thread(_embedded_app(stack, api_key, tmp_path / "gateway"), name="gateway")
        url = served.url
    elif gateway_mode == "cmd":
        assert gateway_process is not None
        url = gateway_process.url
    else:
        url = str(request.config.getoption("--avito-gateway-url")).rstrip("/")
    stack.n8n.flows(gateway_url=url, gateway_api_key=api_key)
    h = Harness(stack, url, api_key, gateway_mode,
                httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30))
    h.api.event_hooks["response"] = [h.record]
    h.chat_id = next(c["id"] for c in stack.avito.account(USER)["chats"] if c["chat_type"] == "u2i")
    try:
        yield h
    finally:
        secrets = [*stack.avito.tokens(USER), stack.settings.avito_client_secret]
        request.config.stash.setdefault(SECRETS, set()).update(secrets)  # the report masks them too
        _n8n_quiet(h)
        _after_scenario(request, h, secrets)
        request.node.user_properties.append(("transcript", mask(stack.story(), secrets)))
        if gateway_process is not None:
            request.node.user_properties.append(("gateway output", mask("".join(gateway_process.output[-40:]), secrets)))
        h.api.close()
        if served is not None:
            served.stop()


def _n8n_quiet(h: Harness) -> None:
    """A real n8n finishes what the scenario started before the report is written (its executions belong in it)."""
    try:
        h.n8n.settle(timeout=5, batches=False)
    except Exception:  # noqa: BLE001 - still busy: the report shows what finished, the next reset moves on
        pass


def _after_scenario(request: pytest.FixtureRequest, h: Harness, secrets: list[str]) -> None:
    """What the fakes say about the scenario: its first anomaly (for the report's root causes), then the checks
    no step makes. Only a scenario whose steps passed gets a failure from here."""
    anomaly = first_anomaly(h.avito.journal(), h.avito.deliveries(account=USER), h.n8n.invalid(),
                            h.n8n.failed_executions())
    if anomaly is not None:
        request.node.user_properties.append(("anomaly", mask(anomaly.summary, secrets)))
        if anomaly.code:
            request.node.user_properties.append(("anomaly code", anomaly.code))
    call = getattr(request.node, "rep_call", None)
    if call is None or not call.passed:
        return
    for headers, body in h.answers:
        piece = leaked_piece(headers + "\n" + body, secrets)
        if piece is not None:
            where = "a header" if piece in headers else "a body"
            raise Defect("secret_leaked", f"the gateway's answer carried {len(piece)} characters of an Avito token or "
                         f"secret in {where}: {piece[:4]}… (masked)")
    failed = h.n8n.failed_executions()
    if failed:
        raise Defect("workflow_failed", "; ".join(e["summary"] for e in failed[:3]))
    unfired = [*h.avito.unfired_faults(), *h.n8n.unfired_faults()]
    if unfired:
        names = ", ".join(f"{f.get('name') or f['id']} on {f['route']}" for f in unfired)
        raise Defect("not_exercised", f"the scenario's fault never hit its request ({names}): what it was written to "
                     "test never happened, so it proves nothing (a refused token or another path took the request)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                         pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    if call.excinfo is not None and isinstance(call.excinfo.value, Defect):
        report.user_properties.append(("defect", call.excinfo.value.code))
    return report


def pytest_bdd_step_error(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, step_func: Any,
                          step_func_args: Any, exception: Exception) -> None:
    request.node.user_properties.append(("failed step", f"{step.keyword} {step.name}"))
    request.node.user_properties.append(("feature", feature.name))


def _events(harness: Harness, kind: str, timeout: float, count: int = 1) -> list[dict[str, Any]]:
    """The flow events of ``kind`` once ``count`` happened, or the ones there are after ``timeout``."""
    try:
        found: list[dict[str, Any]] = harness.n8n.wait_event(kind, count, timeout=timeout)
    except Exception:  # noqa: BLE001 - the control answers 408 when they did not happen
        found = harness.n8n.events(kind)
    return found


def _failed_runs(harness: Harness) -> str:
    failed = harness.n8n.failed_executions()
    return f"; {failed[0]['summary']}" if failed else ""


def _answer_sent(harness: Harness) -> dict[str, Any]:
    """The messages_history row of the answer BAT OUT Avito sent, or the defect that kept it from Avito."""
    outcome = _first_of(harness, ("sent", "send_failed"), timeout=15)
    if outcome is None or outcome["kind"] != "sent":
        refused = [h for h in harness.n8n.history() if h["status"] == "failed"]
        expect(not refused, "workflow_send_refused", f"BAT OUT Avito's send failed: {refused[0]['error'] if refused else ''}"
               f" (messages_history row {refused[0]['id'] if refused else ''}){_failed_runs(harness)}")
        expect(not _failed_runs(harness), "workflow_failed", f"no answer was sent{_failed_runs(harness)}")
        expect(False, "send_failed", "no answer was sent within 15 s and messages_history has no failed row")
    assert outcome is not None
    (row,) = [h for h in harness.n8n.history() if h["id"] == outcome["data"]["history_id"]]
    return dict(row)


def _first_of(harness: Harness, kinds: tuple[str, ...], timeout: float) -> dict[str, Any] | None:
    """The first flow event of one of ``kinds`` (polled in real time, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in harness.n8n.events() if e["kind"] in kinds]
        if found or time.monotonic() >= deadline:
            return found[0] if found else None
        threading.Event().wait(0.1)


def _dropped(harness: Harness) -> str:
    """Why messages n8n received never reached the Universal Batcher: a failed run, or a workflow dropped them."""
    if _failed_runs(harness):
        return "workflow_failed"
    voices = [r for r in harness.n8n.received("avito") if isinstance(r["body"], dict)
              and (r["body"].get("media") or {}).get("has_voice")]
    if voices and not harness.stack.stt.journal():
        return "voice_not_transcribed"
    return "workflow_dropped_message" if harness.n8n.flows().get("engine") == "n8n" else "unclassified"


def _window_closes(harness: Harness) -> None:
    """The Universal Batcher's window passes: on the virtual clock for the Python flows, in real time for n8n."""
    flows = harness.n8n.flows()
    if flows.get("engine") == "n8n":
        harness.n8n.settle(timeout=flows["batch_window"] + 20)
    else:
        harness.stack.advance(flows["batch_window"])


def _settle(harness: Harness) -> None:
    """Whatever the gateway is going to forward has been forwarded. Our gateway says so itself (its outbox flush
    waits for deliveries under way and forwards what is due); a foreign gateway gets a short real-time grace."""
    if harness.mode == "embedded":
        assert harness.api.post("/api/outbox/flush").status_code == 200
        return
    threading.Event().wait(SETTLE)


def _avito_texts(harness: Harness) -> list[str]:
    return [str(r["body"].get("text")) for r in harness.n8n.received("avito") if isinstance(r["body"], dict)]


def _check_forwarded(harness: Harness, n: int) -> list[dict[str, Any]]:
    """n8n holds exactly ``n`` normalized messages from Avito, each once and each valid."""
    received = [r["body"] for r in harness.n8n.received("avito")]
    ids = [str((b.get("meta") or {}).get("external_message_id")) for b in received if isinstance(b, dict)]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    expect(not repeated, "duplicate_forwarded", f"n8n got message(s) {repeated} more than once ({len(received)} "
           "forwards): one Avito message must reach n8n once")
    expect(len(received) >= n, "message_lost", f"n8n received {len(received)} message(s), expected {n}: "
           f"{_avito_texts(harness)}")
    assert len(received) == n, f"n8n received {len(received)} messages, expected {n}: {_avito_texts(harness)}"
    errors = [e for r in harness.n8n.invalid() for e in r["schema_errors"]]
    expect(not any(e.startswith(("media/voice_url", "media/images")) for e in errors), "media_link_missing",
           f"n8n got a voice or image message without its link: {errors}")
    expect(not errors, "normalized_message_invalid", f"n8n got messages that break the normalized format: {errors}")
    return received


# --- Given ----------------------------------------------------------------------------------------------

@given("the harness is running")
def _(harness: Harness) -> None:
    assert harness.gateway_url


@given("the gateway is subscribed to Avito webhooks")
def _(harness: Harness) -> None:
    response = harness.api.post("/api/webhook/subscribe", json={"url": f"{harness.gateway_url}/webhook/avito"})
    expect(response.status_code == 200, "probe_not_200" if "probe" in response.text else "unclassified",
           f"the gateway could not subscribe its webhook: {response.status_code} {response.text[:300]}")


@given("n8n runs the BatteryCRM workflows")
def _(harness: Harness) -> None:
    harness.n8n.flows(mode="flows")


@given("operator mode is on")
def _(harness: Harness) -> None:
    harness.n8n.flows(operator_mode=True)


@given("n8n is down")
def _(harness: Harness) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=None, name="n8n down")


@given(parsers.parse("n8n is down for {seconds:d} seconds"))
def _(harness: Harness, seconds: int) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=None, name="n8n down")
    harness.timers.append((float(seconds), harness.n8n.clear_faults))


@given(parsers.parse("n8n answers the next {n:d} forwards with 503"))
def _(harness: Harness, n: int) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=n, name=f"n8n 503 x{n}")


@given(parsers.parse("Avito delivers every webhook {n:d} times at once"))
def _(harness: Harness, n: int) -> None:
    harness.avito.settings(USER, delivery={"duplicates": n, "concurrent_duplicates": True})


@given(parsers.parse("Avito answers expired tokens with {status:d}"))
def _(harness: Harness, status: int) -> None:
    harness.avito.settings(USER, auth_error_status=status)
    harness.send_defect = "expired_token_not_refreshed"


@given("the Avito token has expired")
def _(harness: Harness) -> None:
    chats = harness.api.get("/api/chats")  # the gateway now holds a token Avito knows
    expect(chats.status_code == 200, "unclassified", f"GET /api/chats answered {chats.status_code}: {chats.text[:300]}")
    assert harness.avito.expire_tokens(USER) >= 1


SEND_ROUTE = "POST /messenger/v1/accounts/*/chats/*/messages"


@given("Avito answers the next send with 429 and Retry-After")
def _(harness: Harness) -> None:
    wait = "5" if harness.mode == "embedded" else "1"  # virtual seconds cost nothing; real ones do
    harness.avito.add_fault("rate_limited_429_retry_after", route=SEND_ROUTE, headers={"Retry-After": wait})


@given(parsers.parse("Avito answers every send with {preset}"))
def _(harness: Harness, preset: str) -> None:
    name = "rate_limited_429" if preset == "429" else preset
    harness.avito.add_fault(name, route=SEND_ROUTE, times=None)
    harness.send_defect = "avito_error_misreported"


@given("Avito hangs on every send")
def _(harness: Harness) -> None:
    harness.avito.add_fault("hang", route=SEND_ROUTE, times=None)
    harness.send_defect = "avito_error_misreported"


@given("Avito processes the next send but the answer is lost")
def _(harness: Harness) -> None:
    harness.avito.add_fault("answer_lost", route=SEND_ROUTE)
    harness.send_defect = "send_posted_twice"


# --- When -----------------------------------------------------------------------------------------------

@when("the gateway subscribes its webhook at Avito")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/webhook/subscribe", json={"url": f"{harness.gateway_url}/webhook/avito"})


@when(parsers.parse('the customer writes "{text}"'))
def _(harness: Harness, text: str) -> None:
    harness.avito.customer_says(USER, harness.chat_id, text)
    harness.customer_messages += 1


@when("the customer sends a photo")
def _(harness: Harness) -> None:
    harness.extra["photo"] = harness.avito.customer_says(USER, harness.chat_id, type="image")["message"]
    harness.customer_messages += 1


@when(parsers.parse('the customer sends a voice message saying "{text}"'))
def _(harness: Harness, text: str) -> None:
    harness.avito.customer_says(USER, harness.chat_id, text, type="voice")
    harness.customer_messages += 1


@when(parsers.parse('the seller replies from the Avito app "{text}"'))
def _(harness: Harness, text: str) -> None:
    harness.avito.customer_says(USER, harness.chat_id, text, author="account")


@when("Avito posts a system message")
def _(harness: Harness) -> None:
    harness.avito.customer_says(USER, harness.chat_id, "[Системное сообщение] Покупатель посмотрел телефон",
                                author="system")


@when("a webhook with a broken JSON body reaches the gateway")
def _(harness: Harness) -> None:
    """What a proxy cutting a body short, or an attacker, delivers to the subscribed URL."""
    subscribed = [str(s.get("url")) for s in harness.avito.account(USER)["subscriptions"]
                  if str(s.get("url", "")).startswith(harness.gateway_url)]
    url = subscribed[0] if subscribed else f"{harness.gateway_url}/webhook/avito"
    harness.extra["webhook answers"] = [
        httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=10)
        for body in (b'{"id": "broken", "payload": {"type": "message", "value": {"id": ', b"not json at all",
                     b'{"payload": [1, 2, 3]}')
    ]


@when(parsers.parse('n8n sends "{text}" through the gateway with idempotency key "{key}"'))
def _(harness: Harness, text: str, key: str) -> None:
    harness.send(text, key)


@when(parsers.parse('n8n sends "{text}" through the gateway'))
def _(harness: Harness, text: str) -> None:
    harness.send(text)


@when("n8n sends a message without text through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/messages/send", json={"chat_id": harness.chat_id})


@when("n8n sends a photo through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/messages/send/image", data={"chat_id": harness.chat_id},
                                        files={"file": ("promo.png", png_bytes("promo", 320, 240), "image/png")})


@when(parsers.parse('n8n sends "{text}" to every chat and one unknown chat'))
def _(harness: Harness, text: str) -> None:
    chats = [c["id"] for c in harness.avito.account(USER)["chats"]]
    harness.extra["bulk_chats"] = chats
    harness.response = harness.api.post("/api/messages/send/bulk", json={"chat_ids": [*chats, "u2i-unknownChat0000000000"],
                                                                          "text": text})


@when(parsers.parse("n8n makes {n:d} requests within a minute"))
def _(harness: Harness, n: int) -> None:
    harness.extra["statuses"] = [harness.api.get("/api/token") for _ in range(n)]


@when("n8n spends the gateway's announced rate limit")
def _(harness: Harness) -> None:
    answer = httpx.get(f"{harness.gateway_url}/info", timeout=10)
    info = answer.json() if answer.status_code == 200 else {}
    # SPEC's figures when the gateway does not announce its own
    limit, window = int(info.get("rate_limit_requests") or 100), float(info.get("rate_limit_window") or 60)
    if harness.mode != "embedded" and window > 65:
        pytest.skip(f"the gateway announces a {window:g} s window: too long to wait for in real time "
                    "(start it with RATE_LIMIT_WINDOW=2, as --gateway-cmd does)")
    harness.pass_time(window + 0.2)  # whatever earlier scenarios spent has left the window
    statuses = []
    for _ in range(limit + 1):
        statuses.append(harness.api.get("/api/chats"))
        if statuses[-1].status_code == 429:
            break
    harness.extra.update(limit=limit, window=window, statuses=statuses)


@when(parsers.parse("{seconds:d} seconds pass"))
def _(harness: Harness, seconds: int) -> None:
    harness.stack.advance(seconds)


@when("n8n is back")
def _(harness: Harness) -> None:
    harness.n8n.clear_faults()


@when("the batching window closes")
def _(harness: Harness) -> None:
    expected = harness.customer_messages
    batched = _events(harness, "batched", 10, expected)
    expect(len(batched) >= expected, _dropped(harness),
           f"{len(batched)} of {expected} message(s) reached the Universal Batcher{_failed_runs(harness)}")
    _window_closes(harness)


@when(parsers.parse('a {channel} client writes "{text}"'))
def _(harness: Harness, channel: str, text: str) -> None:
    harness.n8n.inject(_normalized(channel, text))
    harness.customer_messages += 1


@when(parsers.parse('the operator answers "{text}"'))
def _(harness: Harness, text: str) -> None:
    (appeal,) = harness.n8n.appeals()
    harness.extra["operator"] = harness.n8n.answer(appeal["id"], text)
    if harness.extra["operator"].get("success") is False:
        harness.send_defect = "workflow_send_refused"  # the Message Router / BAT OUT said so itself


# --- Then -----------------------------------------------------------------------------------------------

@then("Avito's probe of the webhook URL passed")
def _(harness: Harness) -> None:
    response = harness.response
    assert response is not None
    subscribe = harness.avito.journal(method="POST", path="/messenger/v3/webhook")
    expect(subscribe and subscribe[-1]["status"] == 200, "probe_not_200",
           "Avito refused the subscription: the probe {} did not get 200 "
           f"({(subscribe[-1].get('extra') or {}).get('error', '') if subscribe else 'no subscribe call reached Avito'})")
    expect(response.status_code == 200, "unclassified", f"{response.status_code} {response.text[:300]}")


@then("Avito lists the gateway's webhook URL")
def _(harness: Harness) -> None:
    subscriptions = harness.avito.account(USER)["subscriptions"]
    ours = [s for s in subscriptions if str(s.get("url", "")).startswith(f"{harness.gateway_url}/webhook/avito")]
    assert ours and ours[0].get("version") == "3", subscriptions  # a secret path segment may follow


@then("the gateway answered every one of them 200")
def _(harness: Harness) -> None:
    answers = harness.extra["webhook answers"]
    bad = [f"{a.status_code} {a.text[:80]}" for a in answers if a.status_code != 200]
    expect(not bad, "webhook_not_200", f"a broken webhook body was answered {bad}; Avito wants 200 for every delivery "
           "(a refused one is recorded, not bounced: Avito would retry it, then unsubscribe the URL)")


@then("/health says healthy")
def _(harness: Harness) -> None:
    health = httpx.get(f"{harness.gateway_url}/health")
    harness.record(health)
    expect(health.status_code == 200 and health.json().get("status") == "healthy", "health_not_healthy", health.text)


@then(parsers.parse("/info shows {requests:d} requests per {window:d} seconds and {connections:d} connections"))
def _(harness: Harness, requests: int, window: int, connections: int) -> None:
    answer = httpx.get(f"{harness.gateway_url}/info")
    harness.record(answer)
    info = answer.json()
    for key in ("rate_limit_requests", "rate_limit_window", "max_connections", "avito_user_id"):
        expect(key in info, "contract_violation", f"/info lacks {key}")
    if harness.mode == "embedded":
        assert (info["rate_limit_requests"], info["rate_limit_window"], info["max_connections"]) == (
            requests, window, connections)


@then("/api/token shows a token without revealing it")
def _(harness: Harness) -> None:
    chats = harness.api.get("/api/chats")  # a call that needs a token Avito knows now
    expect(chats.status_code == 200, "unclassified", f"GET /api/chats answered {chats.status_code}: {chats.text[:200]}")
    response = harness.api.get("/api/token")
    assert response.status_code == 200, response.text
    issued = harness.avito.tokens(USER)
    assert issued, "the gateway never asked Avito for a token"
    piece = leaked_piece(response.text + " ".join(response.headers.values()), issued)
    expect(piece is None, "secret_leaked", f"/api/token shows {len(piece or '')} characters of the access token")


@then("the API refuses calls without a valid key")
def _(harness: Harness) -> None:
    for headers in ({}, {"X-API-Key": "wrong-" + harness.api_key[::-1]}):
        answer = httpx.get(f"{harness.gateway_url}/api/chats", headers=headers, timeout=10)
        harness.record(answer)
        expect(answer.status_code == 401, "api_key_not_enforced",
               f"GET /api/chats {'without a key' if not headers else 'with a wrong key'} answered {answer.status_code}")


@then("a page on another site cannot call the API with the user's credentials")
def _(harness: Harness) -> None:
    origin = "https://attacker.example"
    answer = httpx.options(f"{harness.gateway_url}/api/chats", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-api-key"})
    allowed = answer.headers.get("access-control-allow-origin", "")
    credentials = answer.headers.get("access-control-allow-credentials", "").lower() == "true"
    expect(not (credentials and allowed in ("*", origin)), "cors_wildcard_credentials",
           f"a preflight from {origin} got allow-origin {allowed!r} with allow-credentials true: any web page a user "
           "opens may call the gateway's API as that user")


@then("a gateway started without API_KEY does not serve /api to anyone")
def _(harness: Harness, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if harness.mode == "url":
        pytest.skip("needs to start the gateway itself: run with --gateway-cmd")
    if harness.mode == "embedded":
        try:
            app = _embedded_app(harness.stack, "", tmp_path / "no-key")
        except (ValueError, SystemExit):
            return  # refuses to start: nothing is served
        served = serve_in_thread(app, name="gateway-no-key")
        try:
            status = httpx.get(f"{served.url}/api/chats", timeout=10).status_code
        finally:
            served.stop()
    else:
        process = _process(request.config, harness.stack, api_key="")
        try:
            process.start()
        except Exception:
            return  # exited or never became healthy: it refuses to run open
        try:
            status = httpx.get(f"{process.url}/api/chats", timeout=10).status_code
        finally:
            process.stop()
    expect(status == 401, "api_open_without_key", f"started with API_KEY empty, GET /api/chats without a key answered "
           f"{status}: anyone who can reach the port can read and send as the seller")


@then(parsers.parse("n8n receives {n:d} normalized message"))
@then(parsers.parse("n8n receives {n:d} normalized messages"))
def _(harness: Harness, n: int) -> None:
    harness.n8n.wait_for(n, timeout=10, path="avito")
    _settle(harness)
    received = _check_forwarded(harness, n)
    harness.extra["message"] = received[-1]


@then(parsers.parse("n8n receives {n:d} normalized message within {seconds:d} seconds"))
def _(harness: Harness, n: int, seconds: int) -> None:
    """Real time for a foreign gateway (its own retry timing), the virtual clock for ours."""
    for _ in range(seconds):
        if harness.mode == "embedded":
            _settle(harness)
        if len(harness.n8n.received("avito")) >= n and not harness.timers:
            break
        harness.pass_time(1)
    _settle(harness)
    received = _check_forwarded(harness, n)
    harness.extra["message"] = received[-1]


@then("n8n has received nothing")
def _(harness: Harness) -> None:
    _settle(harness)
    assert harness.n8n.received("avito") == []


@then(parsers.parse('the message text is "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert harness.extra["message"]["text"] == text


def _forwarded_with_text(harness: Harness, text: str, timeout: float = 5.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + (timeout if harness.mode != "embedded" else 0)
    while True:
        if harness.mode == "embedded":
            _settle(harness)
        found = [r["body"] for r in harness.n8n.received("avito") if isinstance(r["body"], dict)
                 and r["body"].get("text") == text]
        if found or time.monotonic() >= deadline:
            return found[0] if found else None
        threading.Event().wait(0.1)


@then(parsers.parse('n8n receives the seller\'s reply "{text}" marked as the seller\'s'))
def _(harness: Harness, text: str) -> None:
    message = _forwarded_with_text(harness, text)
    expect(message is not None, "seller_reply_lost", f'the seller\'s reply "{text}" typed in the Avito app never '
           "reached n8n: the CRM's history misses what the seller told the customer")
    assert message is not None
    expect(from_seller(message), "seller_reply_unmarked", f'the seller\'s reply "{text}" reached n8n as a customer '
           "message (meta.author_role is not \"seller\" and external_user_id is not meta.user_id): the AI would answer it")


@then(parsers.parse('n8n receives the customer\'s message "{text}"'))
def _(harness: Harness, text: str) -> None:
    message = _forwarded_with_text(harness, text)
    expect(message is not None, "message_lost", f'the customer\'s message "{text}" never reached n8n')
    assert message is not None
    expect(not from_seller(message), "seller_reply_unmarked", "the customer's message is marked as the seller's")


@then("n8n received nothing else")
def _(harness: Harness) -> None:
    _settle(harness)
    texts = _avito_texts(harness)
    expect(len(texts) == len(set(texts)), "duplicate_forwarded", f"n8n got a message twice: {texts}")
    expect(len(texts) == 2, "echo_forwarded", f"n8n got {texts}: the gateway's own send and Avito's system "
           "message are not customer messages")


@then(parsers.parse('messages_history keeps the seller\'s reply "{text}" as the operator\'s'))
def _(harness: Harness, text: str) -> None:
    expect(_forwarded_with_text(harness, text) is not None, "seller_reply_lost",
           f'the seller\'s reply "{text}" never reached n8n')
    harness.n8n.wait_event("seller_reply", timeout=5)
    rows = [h for h in harness.n8n.history() if h["text"] == text]
    expect([r["message_type"] for r in rows] == ["operator"], "seller_reply_unmarked",
           f"messages_history holds {rows}: n8n could not tell the seller's reply from the customer's message")


@then("the seller's reply did not make the AI answer again")
def _(harness: Harness) -> None:
    _window_closes(harness)
    _settle(harness)
    ai_rows = [h for h in harness.n8n.history() if h["message_type"] == "ai"]
    expect(len(ai_rows) == 1, "seller_reply_unmarked", f"the AI answered {len(ai_rows)} times: the seller's reply "
           "was taken for the customer's")


@then("the message names the customer, the ad and the chat type")
def _(harness: Harness) -> None:
    message = harness.extra["message"]
    chat = harness.avito.chat(USER, harness.chat_id)
    customer = next(u for u in chat["users"] if u["id"] != USER)
    expect(message["client_name"] == customer["name"], "wrong_client_name",
           f"client_name is {message['client_name']!r}, the customer is {customer['name']!r}")
    assert message["external_user_id"] == str(customer["id"])
    assert message["meta"]["ad_id"] == f"item_{chat['context']['value']['id']}", "meta.ad_id is not the chat's item"
    assert message["meta"]["chat_type"] == "u2i"


@then("the message carries the photo in its largest size")
def _(harness: Harness) -> None:
    media = harness.extra["message"]["media"]
    largest = harness.extra["photo"]["content"]["image"]["sizes"]["1280x960"]
    expect(media["has_images"] and media["images"] == [{"url": largest}], "media_link_missing",
           f"the photo's largest size {largest} is not in media.images: {media.get('images')}")


@then(parsers.parse('the message has a voice link that plays "{text}"'))
def _(harness: Harness, text: str) -> None:
    media = harness.extra["message"]["media"]
    expect(media["has_voice"], "media_link_missing", "media.has_voice is false for a voice message")
    expect(media["voice_url"], "media_link_missing", "the voice message was forwarded without voice_url")
    audio = httpx.get(media["voice_url"])
    expect(audio.status_code == 200 and text.encode() in audio.content, "media_link_missing",
           "the voice link does not play the message")


@then(parsers.parse('n8n transcribed the voice message as "{text}"'))
def _(harness: Harness, text: str) -> None:
    found = _events(harness, "transcribed", 15)
    asked = harness.stack.stt.journal()
    expect(bool(found), "voice_not_transcribed", "n8n never transcribed the voice message: speech-to-text was "
           + (f"asked {len(asked)} time(s) ({asked[0]['method']} {asked[0]['path']} -> {asked[0]['status']})" if asked
              else "never asked") + _failed_runs(harness))
    assert found[0]["data"]["text"] == text, f"transcribed as {found[0]['data']['text']!r}, said {text!r}"


@then("the gateway answers 200 with the sent message's id")
def _(harness: Harness) -> None:
    response = harness.response
    assert response is not None
    expect(response.status_code == 200, harness.send_defect, f"{response.status_code} {response.text[:300]}")
    body = response.json()
    expect(body.get("success") is True and (body.get("response") or {}).get("id"), "contract_violation", str(body))
    ids = [m["id"] for m in harness.avito.chat(USER, harness.chat_id)["messages"]]
    expect(body["response"]["id"] in ids, "contract_violation", "the id in the answer is not a message in the chat")


@then(parsers.parse('the gateway answers {status:d} with code "{code}"'))
def _(harness: Harness, status: int, code: str) -> None:
    response = harness.response
    assert response is not None
    body = response.json()
    expect((response.status_code, body.get("success"), body.get("code")) == (status, False, code),
           harness.send_defect, f"expected {status} {code}, got {response.status_code} {response.text[:300]}")


@then("the gateway answers 400 in the documented error form")
def _(harness: Harness) -> None:
    response = harness.response
    assert response is not None
    try:
        body = response.json()
    except ValueError:
        body = None
    expect(response.status_code == 400 and isinstance(body, dict) and body.get("success") is False
           and isinstance(body.get("error"), str), "validation_not_spec_body",
           f"a send without text got {response.status_code} {response.text[:200]}; SPEC's form is 400 "
           '{"success": false, "error": "..."}')


@then(parsers.parse('the error says "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert harness.response is not None
    expect(text in harness.response.json().get("error", ""), harness.send_defect, harness.response.text[:300])


@then(parsers.parse("the error is retryable: {answer}"))
def _(harness: Harness, answer: str) -> None:
    assert harness.response is not None
    expect(harness.response.json().get("retryable") is (answer == "yes"), harness.send_defect,
           f"retryable should be {answer == 'yes'}: {harness.response.text[:300]}")


@then("no send was repeated without checking the chat first")
def _(harness: Harness) -> None:
    """After an ambiguous failure (a 5xx, a lost answer) the message may be in the chat already: posting it again
    blindly is how customers get the same message twice."""
    calls = [e for e in harness.avito.journal() if e["path"].startswith("/messenger/")]
    blind, unsure = 0, False  # unsure: the last send's fate is unknown and the chat was not read since
    for call in calls:
        if call["method"] == "POST" and call["path"].endswith("/messages"):
            blind += unsure
            status = call.get("status") or 0
            unsure = status >= 500 or status == 0 or (status < 400 and call.get("fault") is not None)
        elif call["method"] == "GET" and "/messages" in call["path"]:
            unsure = False
    expect(blind == 0, "send_posted_twice", f"the send was posted again {blind} time(s) after Avito's ambiguous "
           "answer without reading the chat first: had Avito processed it, the customer would see it twice")


@then(parsers.parse('the customer\'s chat shows "{text}" once'))
def _(harness: Harness, text: str) -> None:
    count = harness.chat_texts().count(text)
    expect(count <= 1, "send_posted_twice", f'"{text}" is in the chat {count} times')
    expect(count == 1, harness.send_defect, f'"{text}" is not in the chat')


@then(parsers.parse('the customer\'s chat shows "{text}"'))
def _(harness: Harness, text: str) -> None:
    refused = (harness.extra.get("operator") or {}).get("error")
    expect(text in harness.chat_texts(), harness.send_defect, f'"{text}" is not in the customer\'s chat'
           + (f": the operator's answer failed: {refused}" if refused else ""))


@then("the customer's chat ends with a photo")
def _(harness: Harness) -> None:
    assert harness.avito.chat(USER, harness.chat_id)["messages"][-1]["type"] == "image"


@then(parsers.parse('every known chat shows "{text}"'))
def _(harness: Harness, text: str) -> None:
    for chat_id in harness.extra["bulk_chats"]:
        expect(harness.chat_texts(chat_id)[-1] == text, harness.send_defect, chat_id)


@then("the unknown chat is reported as not found")
def _(harness: Harness) -> None:
    assert harness.response is not None
    body = harness.response.json()
    (failed,) = [r for r in body["results"] if not r.get("success")]
    assert failed["chat_id"] == "u2i-unknownChat0000000000" and "404" in failed["error"]
    assert body["failed"] == 1 and body["success"] is False


@then("the last one is answered 429 with Retry-After")
def _(harness: Harness) -> None:
    statuses = [r.status_code for r in harness.extra["statuses"]]
    expect(statuses[:100] == [200] * 100, "rate_limit_too_strict", "refused before the 100th request")
    last = harness.extra["statuses"][-1]
    expect(last.status_code == 429, "rate_limit_not_enforced", f"the 101st request got {last.status_code}")
    assert int(last.headers["Retry-After"]) > 0
    assert last.json()["error"] == "Rate limit exceeded, try again later"


@then("one more request is answered 429 with Retry-After")
def _(harness: Harness) -> None:
    statuses, limit = harness.extra["statuses"], harness.extra["limit"]
    served = [r.status_code for r in statuses].index(429) if statuses[-1].status_code == 429 else len(statuses)
    expect(served >= limit, "rate_limit_too_strict", f"refused after {served} requests; /info announces {limit}")
    expect(served <= limit, "rate_limit_not_enforced",
           f"{served} requests in a row were served; /info announces {limit} per {harness.extra['window']:g} s")
    last = statuses[-1]
    expect(last.headers.get("Retry-After", "").isdigit(), "rate_limit_not_enforced", "the 429 has no Retry-After")
    expect(last.json().get("error") == "Rate limit exceeded, try again later", "contract_violation", last.text[:200])


@then("after the window, steady requests are served again")
def _(harness: Harness) -> None:
    """A limiter must forget requests older than its window even when traffic never stops."""
    window = harness.extra["window"]
    step = window / 4
    served_at = None
    for n in range(1, math.ceil(2 * window / step) + 1):
        harness.pass_time(step)
        if harness.api.get("/api/chats").status_code == 200:
            served_at = n * step
            break
    expect(served_at is not None, "rate_limit_never_resets", f"one request every {step:g} s (a quarter of the limit) "
           f"was still refused {2 * window:g} s after the limit was reached: the window never closes")


@then("the customer's chat shows the AI's answer")
@then("the customer's chat shows the AI's answer once")
def _(harness: Harness) -> None:
    row = _answer_sent(harness)
    count = harness.chat_texts().count(row["text"])
    expect(count <= 1, "send_posted_twice", f"the AI's answer is in the chat {count} times")
    expect(count == 1, "send_failed", "the AI's answer is not in the chat")


@then(parsers.parse('messages_history has a sent "{kind}" row for the appeal'))
def _(harness: Harness, kind: str) -> None:
    (appeal,) = harness.n8n.appeals()
    rows = [h for h in harness.n8n.history() if h["appeal_id"] == appeal["id"]]
    assert [(r["message_type"], r["status"], r["channel"]) for r in rows] == [(kind, "sent", "avito")], rows
    assert rows[0]["external_message_id"] in [m["id"] for m in harness.avito.chat(USER, harness.chat_id)["messages"]]


@then(parsers.parse("one appeal holds {n:d} message"))
@then(parsers.parse("one appeal holds {n:d} messages"))
def _(harness: Harness, n: int) -> None:
    harness.n8n.wait_event("appeal_created", timeout=10)
    (appeal,) = harness.n8n.appeals()
    batches = harness.n8n.appeal(appeal["id"])["batches"]
    assert sum(len(b["messages"]) for b in batches) == n and len(batches) == 1, batches
    harness.extra["appeal"] = harness.n8n.appeal(appeal["id"])


@then(parsers.parse('the appeal\'s text contains "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert text in harness.extra["appeal"]["batches"][0]["text"]


@then("the appeal waits for an operator")
def _(harness: Harness) -> None:
    harness.n8n.wait_event("waiting_operator", timeout=10)
    (appeal,) = harness.n8n.appeals()
    assert appeal["status"] == "waiting_operator" and harness.n8n.history() == []


@then(parsers.parse("the {channel} outbound stub got the answer"))
def _(harness: Harness, channel: str) -> None:
    harness.n8n.wait_event("stub_sent", timeout=10)
    assert [s["channel"] for s in harness.n8n.stubs()] == [channel]


@then("nothing was sent to Avito")
def _(harness: Harness) -> None:
    assert harness.avito.journal(method="POST", path="/messenger/v1/*") == []


def _normalized(channel: str, text: str) -> dict[str, Any]:
    return {
        "channel": channel, "external_user_id": f"{channel}-42", "external_chat_id": f"{channel}-chat-42", "text": text,
        "timestamp": "2025-12-01T12:00:00", "client_phone": None, "client_name": "Гость", "client_email": None,
        "media": {"has_voice": False, "voice_url": None, "voice_transcribed_text": None, "has_images": False,
                  "images": [], "has_video": False, "videos": [], "has_document": False},
        "meta": {"external_message_id": f"{channel}-1", "ad_channel": channel, "ad_id": None,
                 "original_media_type": "text", "chat_type": None, "user_id": None, "raw": {}},
        "prefilled_data": {"model": None, "parts_owner": None},
    }
