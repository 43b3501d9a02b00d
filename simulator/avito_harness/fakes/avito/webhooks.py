"""Webhook delivery like Avito's: a v3 envelope POSTed for every new message.

Avito probes a URL with ``{}`` when it is subscribed (200 within 2 s or no
subscription), then POSTs each new message of the account's chats (customer
messages, system messages with ``author_id`` 0, and echoes of the account's
own sends with ``author_id == user_id``) with a 2 s timeout and an
``x-avito-messenger-signature`` header. Avito documents neither retries nor
ordering; the :class:`~avito_harness.fakes.avito.models.DeliveryPolicy` of each account
selects them (retries with backoff on the virtual clock, duplicate and
concurrent deliveries, out-of-order via jitter, the echo arriving before the
send call returns). Every attempt is recorded.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import json
import threading
import time as _perf
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from avito_harness.fakes.avito.errors import BadRequestError, ValidationFailedError
from avito_harness.fakes.avito.models import Chat, Message, Subscription
from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.clock import Clock
from avito_harness.fakes.reasons import Reason

if TYPE_CHECKING:
    import httpx

__all__ = ["DeliveryAttempt", "WebhookDispatcher", "sign", "SIGNATURE_HEADER", "WEBHOOK_VERSION"]

SIGNATURE_HEADER = "x-avito-messenger-signature"
#: What every real capture 2023-2025 carries in ``version``.
WEBHOOK_VERSION = "v3.0.0"


def sign(secret: str, body: bytes) -> str:
    """HMAC-SHA256 hex of the raw body. Avito's real algorithm is undocumented: this is our choice."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class DeliveryAttempt:
    id: int
    event_id: str
    message_id: str
    account: int
    url: str
    copy: int
    attempt: int
    time: float
    status: int | None
    error: str | None
    duration_ms: float
    author_id: int
    chat_id: str
    seen_at: float = field(default_factory=_perf.perf_counter)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class _Job:
    state: AvitoState
    sub: Subscription
    body: bytes
    event_id: str
    message: Message
    chat: Chat
    copy: int
    done: Future[DeliveryAttempt]


class WebhookDispatcher:
    """Sends webhooks from a small thread pool, in order per subscription."""

    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float = 2.0,
        allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1"),
        transport: httpx.BaseTransport | None = None,
        workers: int = 8,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.allowed_hosts = allowed_hosts
        self._transport = transport
        self._made: httpx.Client | None = None  # made on first use: httpx and its TLS setup cost a cold start ~90 ms
        self._made_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-webhook")
        self._lock = threading.Condition()
        self._attempts: list[DeliveryAttempt] = []
        self._ids = itertools.count(1)
        self._queues: dict[tuple[int, str], deque[_Job]] = {}
        self._active: set[tuple[int, str]] = set()
        self._generation = 0
        self._futures: dict[str, list[Future[DeliveryAttempt]]] = {}

    @property
    def _client(self) -> httpx.Client:
        with self._made_lock:
            if self._made is None:
                import httpx

                from avito_harness.http_deadline import DeadlineTransport

                # Avito's timeout is for the whole answer: a receiver trickling it byte by byte is cut off too
                transport = self._transport or DeadlineTransport(total=self.timeout, max_bytes=1024 * 1024)
                self._made = httpx.Client(timeout=self.timeout, transport=transport, follow_redirects=False)
            return self._made

    # --- subscribing -------------------------------------------------------
    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationFailedError({"url": "must be an absolute http(s) URL"})
        host = parts.hostname
        if not any(fnmatchcase(host, pattern) for pattern in self.allowed_hosts):
            raise BadRequestError(
                f"Webhook host {host!r} is not allowed by the simulator (SIM_WEBHOOK_ALLOWED_HOSTS)"
            )

    def probe(self, url: str) -> None:
        """POST ``{}`` like Avito does at subscribe time; refuse unless 200 within the timeout."""
        self.check_url(url)
        client = self._client
        try:
            response = client.post(url, json={})
        except _http_error() as exc:
            raise BadRequestError(
                f"Webhook URL did not answer within {self.timeout:g} s: {type(exc).__name__}",
                reason=Reason.PROBE_REFUSED) from None
        if response.status_code != 200:
            raise BadRequestError(f"Webhook URL answered {response.status_code} to the probe; 200 is required",
                                  reason=Reason.PROBE_REFUSED)

    # --- delivering --------------------------------------------------------
    def envelope(self, state: AvitoState, message: Message, chat: Chat) -> dict[str, Any]:
        return {
            "id": str(uuid.UUID(int=state.rng.getrandbits(128), version=4)),
            "version": WEBHOOK_VERSION,
            "timestamp": int(self.clock.now()),
            "payload": {"type": "message", "value": state.render_webhook_value(message, chat)},
        }

    def dispatch(self, state: AvitoState, message: Message, chat: Chat) -> list[Future[DeliveryAttempt]]:
        """Queue delivery of one new message to every subscription; futures end with first attempts."""
        if not state.subscriptions:  # no one to tell (a load test's sends): no lock to take
            return []
        with state.lock:
            subs = list(state.subscriptions)
            policy = state.settings.delivery
        if not subs:
            return []
        event = self.envelope(state, message, chat)
        body = json.dumps(event, ensure_ascii=False).encode()
        futures: list[Future[DeliveryAttempt]] = []
        for sub in subs:
            for copy in range(1, policy.duplicates + 1):
                job = _Job(state, sub, body, event["id"], message, chat, copy, Future())
                futures.append(job.done)
                delay = state.rng.uniform(0, policy.jitter) if policy.jitter else 0.0
                if delay:
                    self.clock.call_later(delay, functools.partial(self._run, job, 1), name="webhook-jitter")
                elif policy.concurrent_duplicates and policy.duplicates > 1:
                    self._pool.submit(self._run, job, 1)
                else:
                    self._enqueue(job)
        with self._lock:
            self._futures[message.id] = futures
            if len(self._futures) > 5000:
                self._futures.pop(next(iter(self._futures)))
        return futures

    def first_attempts(self, message_id: str) -> list[Future[DeliveryAttempt]]:
        """Futures that end with the first delivery attempt of each copy of a message."""
        with self._lock:
            return list(self._futures.get(message_id, ()))

    def _enqueue(self, job: _Job) -> None:
        key = (job.state.user_id, job.sub.url)
        with self._lock:
            self._queues.setdefault(key, deque()).append(job)
            if key in self._active:
                return
            self._active.add(key)
        self._pool.submit(self._drain, key, self._generation)

    def _drain(self, key: tuple[int, str], generation: int) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(key)
                if generation != self._generation or not queue:
                    self._active.discard(key)
                    return
                job = queue.popleft()
            self._run(job, 1)

    def _run(self, job: _Job, attempt: int) -> None:
        policy = job.state.settings.delivery
        headers = {"Content-Type": "application/json", "User-Agent": "avito-harness-webhooks/1.0"}
        if policy.signature:
            headers[SIGNATURE_HEADER] = sign(job.sub.secret or job.state.account.client_secret, job.body)
        started = _perf.perf_counter()
        status: int | None = None
        error: str | None = None
        client = self._client
        try:
            status = client.post(job.sub.url, content=job.body, headers=headers).status_code
        except _http_error() as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        record = DeliveryAttempt(
            id=next(self._ids),
            event_id=job.event_id,
            message_id=job.message.id,
            account=job.state.user_id,
            url=job.sub.url,
            copy=job.copy,
            attempt=attempt,
            time=self.clock.now(),
            status=status,
            error=error,
            duration_ms=round((_perf.perf_counter() - started) * 1000, 3),
            author_id=job.message.author_id,
            chat_id=job.chat.id,
        )
        with self._lock:
            self._attempts.append(record)
            self._lock.notify_all()
        if not job.done.done():
            job.done.set_result(record)
        if not record.ok and attempt <= policy.retries:
            backoff = policy.retry_backoff * (2 ** (attempt - 1))
            self.clock.call_later(backoff, lambda: self._run(job, attempt + 1), name="webhook-retry")

    # --- reading the log ---------------------------------------------------
    def attempts(self, *, account: int | None = None, message_id: str | None = None) -> list[DeliveryAttempt]:
        with self._lock:
            items = list(self._attempts)
        return [
            a
            for a in items
            if (account is None or a.account == account) and (message_id is None or a.message_id == message_id)
        ]

    def wait_for(self, count: int, timeout: float, *, account: int | None = None) -> list[DeliveryAttempt]:
        """Block (real time, bounded) until at least ``count`` attempts are logged."""

        def found() -> list[DeliveryAttempt]:
            return [a for a in self._attempts if account is None or a.account == account]

        with self._lock:
            self._lock.wait_for(lambda: len(found()) >= count, timeout)
            return found()

    def reset(self) -> None:
        with self._lock:
            self._attempts.clear()
            self._futures.clear()
            self._queues.clear()
            self._active.clear()
            self._generation += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._made is not None:
            self._made.close()


def _http_error() -> type[Exception]:
    import httpx

    return httpx.HTTPError
