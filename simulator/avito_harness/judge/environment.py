"""What a run judges: the fakes, the real pipeline when asked, and the gateway under test, started and checked
before any scenario, and kept clean between scenarios.

``Environment.start(options)`` raises :class:`~avito_harness.judge.verdict.CannotJudge` with the category
that says whose problem it is: ``setup_error`` (a port taken, a gateway command not found, exiting or never
answering ``GET /health``, a URL nobody answers at) or ``pipeline_error`` (Postgres or n8n not starting, a
workflow set n8n cannot run). Between scenarios a gateway the harness started is started afresh after a
failed scenario (or a crash), and the harness waits out a rate window the last scenario spent, so one
failure is never carried into the next scenario's verdict.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

import httpx

from avito_harness.fakes.settings import DEMO_API_KEY, DEMO_USER_ID
from avito_harness.judge.bounded_http import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    HEALTH_ANSWER_BYTES,
    Bounds,
    bounded_client,
)
from avito_harness.judge.verdict import CannotJudge, Category
from avito_harness.stack.gateway_process import GatewayProcess, GatewayProcessError, last_lines
from avito_harness.waiting import pause, wait_until

__all__ = ["EMBEDDED_GROUP", "Environment", "SHORT_WINDOWS", "TargetOptions", "USER", "WINDOW_CAP"]

USER = DEMO_USER_ID
EMBEDDED_GROUP = "avito_harness.embedded_gateway"
#: A gateway the harness starts gets short windows, so real-time checks stay short (a foreign gateway may
#: ignore names it does not know; the checks read the limits it announces on /info).
SHORT_WINDOWS = {"RATE_LIMIT_REQUESTS": "60", "RATE_LIMIT_WINDOW": "1", "OUTBOX_RETRY_MIN": "0.5", "OUTBOX_RETRY_MAX": "2",
                 "RETRY_MIN_WAIT": "0.1", "RETRY_MAX_WAIT": "0.5"}
#: The longest rate window the harness waits out in real time (seconds).
WINDOW_CAP = 65.0
#: After a failed scenario against a gateway it cannot restart, the harness waits until n8n has heard nothing
#: for this long (bounded by QUIET_LIMIT) so a late forward is not taken for the next scenario's.
QUIET, QUIET_LIMIT = 1.0, 10.0


@dataclass(frozen=True, kw_only=True)
class TargetOptions:
    """What to judge and how long to wait: the options of ``run`` and of the pytest plugin."""

    gateway_url: str | None = None
    gateway_api_key: str | None = None
    gateway_cmd: str | None = None
    #: MODULE:CALLABLE, a Python gateway's in-process factory (settings, clock) -> ASGI app, on the harness's
    #: virtual clock like ours (None: ours, found by its entry point)
    gateway_app: str | None = None
    stack_url: str | None = None
    n8n: str = "light"
    n8n_url: str | None = None
    n8n_api_key: str | None = None
    postgres_url: str | None = None
    workflows: str | None = None
    workflows_map: str | None = None
    crm_schema: str | None = None  # the shop's own SQL for the CRM database (with --n8n real)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    start_timeout: float = 30.0
    scenario_timeout: float = 300.0
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    #: False (the default): the fake Avito serves a near miss (Basic token auth, another API version, ...) as the
    #: call it nearly is and the judge names it, so deeper defects show in the same run; True: Avito's refusal.
    strict_avito: bool = False
    #: start a real Redis (Debian's redis-server) for a gateway the harness starts, and give it REDIS_URL
    redis: bool = False
    #: seed: judge what SPEC promises; full: also our gateway's extensions (error codes, Idempotency-Key, ...)
    profile: str = "seed"

    def __post_init__(self) -> None:
        if sum(1 for given in (self.gateway_url, self.gateway_cmd, self.gateway_app) if given) > 1:
            raise CannotJudge(Category.USAGE, "give one of --gateway-url, --gateway-cmd and --gateway-app")
        if self.gateway_app is not None and not re.fullmatch(r"[\w.]+:[\w.]+", self.gateway_app):
            raise CannotJudge(Category.USAGE, f"--gateway-app is MODULE:CALLABLE (like uvicorn's), not {self.gateway_app!r}")
        for name in ("request_timeout", "start_timeout", "scenario_timeout"):
            if not getattr(self, name) > 0:
                raise CannotJudge(Category.USAGE, f"--{name.replace('_', '-')} must be more than 0 seconds")
        if self.profile not in ("seed", "full"):
            raise CannotJudge(Category.USAGE, f"--profile is seed or full, not {self.profile!r}")
        if self.redis and not self.gateway_cmd:
            raise CannotJudge(Category.USAGE, "--redis starts Redis for a gateway the harness starts: use it with "
                              "--gateway-cmd (a running gateway has its own)")
        if self.gateway_cmd is not None:
            try:
                words = shlex.split(self.gateway_cmd)
            except ValueError as exc:
                raise CannotJudge(Category.USAGE, f"--gateway-cmd cannot be split into words: {exc}") from None
            if not words:
                raise CannotJudge(Category.USAGE, "--gateway-cmd is empty")

    @property
    def mode(self) -> str:
        """embedded (ours, in-process, on the harness clock), url (already running) or cmd (started by command)."""
        return "url" if self.gateway_url else "cmd" if self.gateway_cmd else "embedded"

    @property
    def api_key(self) -> str:
        return self.gateway_api_key or DEMO_API_KEY

    def bounds(self) -> Bounds:
        return Bounds(self.request_timeout, self.max_answer_bytes, self.scenario_timeout)

    @classmethod
    def from_pytest(cls, config: Any) -> TargetOptions:
        opt = config.getoption
        return cls(gateway_url=opt("--avito-gateway-url"), gateway_api_key=opt("--avito-gateway-api-key"),
                   gateway_cmd=opt("--avito-gateway-cmd"), gateway_app=opt("--avito-gateway-app"), stack_url=opt("--avito-stack-url"), n8n=opt("--avito-n8n"),
                   n8n_url=opt("--avito-n8n-url"), n8n_api_key=opt("--avito-n8n-api-key"),
                   postgres_url=opt("--avito-postgres-url"), workflows=opt("--avito-workflows"),
                   workflows_map=opt("--avito-workflows-map"), request_timeout=opt("--avito-request-timeout"),
                   start_timeout=opt("--avito-start-timeout"), scenario_timeout=opt("--avito-scenario-timeout"),
                   strict_avito=opt("--avito-strict-avito"), redis=opt("--avito-redis"), profile=opt("--avito-profile"))


class Environment:
    """The started stack and gateway (see the module docstring); ``close()`` stops what it started."""

    def __init__(self, options: TargetOptions) -> None:
        self.options = options
        self.stack: Any = None  # Stack, or RemoteStack for fakes running elsewhere
        self.real: Any = None
        self.process: GatewayProcess | None = None
        self.window = 60.0  # the rate window the gateway announces (capped), waited out after a scenario spent it
        self._restart = False
        self._wait_window = False
        self._quiet = False
        self.journal_mark = 0  # the fake Avito's last journal id when the last scenario ended
        self.run_deadline = math.inf  # the monotonic time the whole run must end by (set by the run)
        self._process_env: dict[str, str] = {}  # what a gateway the harness starts gets besides the deployment's
        self._closers: list[Callable[[], None]] = []

    @property
    def mode(self) -> str:
        return self.options.mode

    @property
    def gateway_url(self) -> str:
        if self.process is not None:
            return self.process.url
        return str(self.options.gateway_url or "").rstrip("/")

    # --- starting -----------------------------------------------------------------------------------------
    @classmethod
    def start(cls, options: TargetOptions) -> Environment:
        env = cls(options)
        try:
            if options.mode == "url":
                env._probe_url()  # before the fakes take their ports: a gateway that is not there is the first thing to say
            env._start_fakes()
            if options.n8n == "real":
                env._start_pipeline()
            if options.mode == "embedded":
                env.embedded_factory()  # installed, or the run cannot judge anything
            elif options.mode == "cmd":
                env._start_process()
            if options.mode != "embedded":
                env._check_key()
                env.window = env._announced_window()
        except BaseException:
            env.close()
            raise
        return env

    def _start_fakes(self) -> None:
        from avito_harness.fakes.settings import SettingsError, SimSettings
        from avito_harness.stack.local import Stack, StackError
        from avito_harness.stack.remote import RemoteStack, parse_stack_urls

        if self.options.stack_url:
            try:
                remote = RemoteStack(parse_stack_urls(self.options.stack_url))
            except ValueError as exc:
                raise CannotJudge(Category.USAGE, str(exc)) from None
            self._closers.append(remote.close)
            for name, client in (("avito", remote.avito), ("n8n", remote.n8n), ("stt", remote.stt)):
                try:
                    client.clock()
                except Exception as exc:  # noqa: BLE001 - nothing, or not a fake, answers there
                    raise CannotJudge(Category.SETUP, f"no fake {name} answers at {remote.urls[name]} (--stack-url): "
                                      f"GET /_sim/clock: {type(exc).__name__}: {str(exc)[:120]}") from None
            self.stack = remote
            return
        overrides: dict[str, Any] = {"clock": "frozen", "n8n_mode": "record",
                                     "near_misses": "refuse" if self.options.strict_avito else "serve"}
        if self.options.mode != "url":
            overrides.update(avito_port=0, n8n_port=0, stt_port=0)
        try:
            settings = SimSettings.from_env(os.environ, **overrides)
            stack = Stack(settings)
        except SettingsError as exc:
            raise CannotJudge(Category.SETUP, f"the fakes' settings (SIM_* variables): {exc}") from None
        self._closers.append(stack.stop)
        try:
            stack.serve()
        except StackError as exc:
            hint = (" (--gateway-url runs the fakes on their default ports, which the gateway was configured with: "
                    "stop `avito-harness sim` or whatever holds the port)") if self.options.mode == "url" else ""
            raise CannotJudge(Category.SETUP, f"the fakes could not start: {exc}{hint}") from None
        self.stack = stack

    def _start_pipeline(self) -> None:
        try:
            import psycopg
        except ImportError:
            raise CannotJudge(Category.SETUP, "the real pipeline needs psycopg for its Postgres: pip install "
                              "'avito-harness[postgres]'") from None

        from avito_harness.real.n8n.mapping import MappingError
        from avito_harness.real.n8n.pipeline import start_behind
        from avito_harness.real.n8n.server import N8nServerError
        from avito_harness.real.postgres import PostgresError
        from avito_harness.real.redis import RedisError

        options = self.options
        if options.n8n_url:
            self._probe(options.n8n_url.rstrip("/"), "/healthz", Category.PIPELINE, "--n8n-url; is n8n running?")
        if options.postgres_url:  # before n8n starts: a wrong database URL is said in a second, not a minute
            try:
                psycopg.connect(options.postgres_url, connect_timeout=5).close()
            except psycopg.Error as exc:
                raise CannotJudge(Category.PIPELINE, f"the CRM's Postgres at --postgres-url does not answer: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        try:
            self.real = start_behind(self.stack, gateway_api_key=options.api_key, batch_window=REAL_BATCH_WINDOW,
                                     n8n_url=options.n8n_url, n8n_api_key=options.n8n_api_key,
                                     postgres_url=options.postgres_url, workflows=options.workflows,
                                     workflows_map=options.workflows_map, crm_schema=options.crm_schema)
        except (N8nServerError, PostgresError, RedisError, MappingError, psycopg.Error, OSError, ValueError) as exc:
            raise CannotJudge(Category.PIPELINE, f"the real pipeline could not start: {exc}") from None
        self._closers.append(self.real.stop)

    def _start_process(self) -> None:
        extra: dict[str, str] = {}
        if self.options.redis:
            from avito_harness.real.redis import RedisError, RedisServer

            redis = RedisServer()
            self._closers.append(redis.stop)
            try:
                extra["REDIS_URL"] = redis.start().url
            except RedisError as exc:
                raise CannotJudge(Category.PIPELINE, f"--redis: {exc}") from None
        self.process = self._new_process(api_key=self.options.api_key, extra=extra)
        self._closers.append(lambda: self.process.stop() if self.process is not None else None)
        try:
            self.process.start()
        except GatewayProcessError as exc:
            hint = ("; it seems to want Redis: run with --redis (the harness starts Debian's redis-server and "
                    "passes REDIS_URL)") if "redis" in str(exc).lower() and not self.options.redis else ""
            raise CannotJudge(Category.SETUP, f"--gateway-cmd: {exc}{hint}") from None

    def _new_process(self, *, api_key: str, extra: dict[str, str] | None = None) -> GatewayProcess:
        self._process_env = {**SHORT_WINDOWS, **(extra if extra is not None else self._process_env)}
        return GatewayProcess.wired_to(
            self.stack, api_key=api_key, command=shlex.split(str(self.options.gateway_cmd)),
            extra_env=dict(self._process_env), require_healthy=False, start_timeout=self.options.start_timeout)

    def gateway_without_key(self) -> GatewayProcess:
        """Another instance of the gateway under test, started with API_KEY empty (the caller starts and stops it)."""
        return self._new_process(api_key="")

    def _probe(self, base: str, path: str, category: Category, what: str) -> None:
        """Something answers ``GET path`` with a JSON object holding ``status`` (SPEC's /health, n8n's /healthz):
        a plain web server or one of the fakes at that URL is a wrong URL, not a gateway with defects."""
        with bounded_client(Bounds(self.options.request_timeout, HEALTH_ANSWER_BYTES)) as http:
            try:
                answer = http.get(f"{base}{path}")
            except httpx.HTTPError as exc:
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise CannotJudge(category, f"nothing answers at {base} ({what}): GET {path}: {detail}") from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not (isinstance(body, dict) and "status" in body):
            raise CannotJudge(category, f"what answers at {base} is not it ({what}): GET {path} answered "
                              f"{answer.status_code} {answer.headers.get('content-type', '')} {answer.text[:80]!r}, "
                              'not a JSON object with "status"')

    def _probe_url(self) -> None:
        self._probe(self.gateway_url, "/health", Category.SETUP, "--gateway-url; is the gateway running?")

    def _check_key(self) -> None:
        """The gateway accepts the key the run uses: a refused key would make every /api check a documented 401
        (and the refusals would be counted as the gateway's), so the run cannot judge."""
        refused = []
        with bounded_client(Bounds(self.options.request_timeout, 65536)) as http:
            for path in ("/api/chats", "/api/token"):
                try:
                    answer = http.get(f"{self.gateway_url}{path}", headers={"X-API-Key": self.options.api_key})
                except httpx.HTTPError:
                    return  # the scenarios will say what is wrong with it
                if answer.status_code not in (401, 403):
                    return
                refused.append(f"GET {path} answered {answer.status_code}")
        given = ("--gateway-api-key" if self.mode == "url" else
                 f"API_KEY={self.options.api_key} (does the command set a key of its own?)")
        raise CannotJudge(Category.USAGE, f"the gateway refuses the API key of the run ({'; '.join(refused)}): "
                          f"check {given}")

    def _announced_window(self) -> float:
        """The rate window /info announces (SPEC's 60 s when it says nothing usable), capped at WINDOW_CAP."""
        with bounded_client(Bounds(self.options.request_timeout, 65536)) as http:
            try:
                info = http.get(f"{self.gateway_url}/info").json()
                window = float(info.get("rate_limit_window") or 60)
            except (httpx.HTTPError, ValueError, AttributeError, TypeError):
                window = 60.0
        return min(max(window, 0.0), WINDOW_CAP)

    def embedded_factory(self) -> Callable[..., Any]:
        """The in-process gateway's factory: --gateway-app's, or ours found by its entry point (the harness never
        imports a gateway by name)."""
        if self.options.gateway_app:
            return _load_factory(self.options.gateway_app)
        found = [ep for ep in entry_points(group=EMBEDDED_GROUP) if ep.name == "ours"]
        if not found:
            raise CannotJudge(Category.SETUP, "our gateway is not installed (pip install 'avito-harness[embedded]', "
                              f"entry point {EMBEDDED_GROUP}/ours): give yours with --gateway-cmd, --gateway-url or "
                              "--gateway-app")
        try:
            factory: Callable[..., Any] = found[0].load()
        except ImportError as exc:  # its metadata is there, its code is not (a half-removed install)
            raise CannotJudge(Category.SETUP, f"our gateway's entry point {found[0].value} cannot be loaded ({exc}): "
                              "reinstall avito-gateway, or give yours with --gateway-cmd or --gateway-url") from None
        return factory

    def embedded_app(self, api_key: str, data_dir: Path) -> Any:
        """Our gateway in-process on the harness clock (:class:`GatewayProcessError` when it refuses to start
        without a key, as it should). connection_timeout: the one scenario that waits it out
        stays short, and a loaded CI machine answering in half a second is not mistaken for Avito hanging."""
        settings = {
            "api_key": api_key, "avito_client_id": self.stack.settings.avito_client_id,
            "avito_client_secret": self.stack.settings.avito_client_secret, "avito_user_id": USER,
            "avito_api_base_url": self.stack.urls["avito"], "n8n_webhook_url": self.stack.n8n_webhook_url,
            "data_dir": data_dir, "connection_timeout": 2, "max_retries": 1, "retry_min_wait": 1, "retry_max_wait": 4,
            "outbox_poll_interval": 0.01,
        }
        factory = self.embedded_factory()
        try:
            return factory(settings, self.stack.clock)
        except Exception as exc:  # noqa: BLE001 - a factory that cannot build its app leaves nothing to judge
            if not api_key:
                raise GatewayProcessError(f"refused to start without API_KEY: {exc}") from exc
            where = f"--gateway-app {self.options.gateway_app}" if self.options.gateway_app else "the embedded gateway"
            raise CannotJudge(Category.SETUP, f"{where}(settings, clock) raised {type(exc).__name__}: "
                              f"{str(exc)[:300]}") from None

    # --- between scenarios ----------------------------------------------------------------------------------
    def crashed(self) -> str | None:
        """How the gateway process ended, if it did ("exited with code 1; its last output: ..."), else None."""
        if self.process is None:
            return None
        ended = self.process.describe_exit()
        return None if ended is None else f"the gateway process {ended}; its last output: {last_lines(self.process.output)}"

    def after_scenario(self, *, passed: bool, limited: bool) -> None:
        """What the next scenario needs: a fresh process after a failure or a crash (when the harness started the
        gateway), the rate window waited out when this one spent it, n8n quiet when nothing can be restarted."""
        if self.mode == "embedded":
            return
        self._restart = self.mode == "cmd" and (not passed or self.crashed() is not None)
        self._wait_window = limited and not self._restart
        self._quiet = not passed and self.mode == "url"

    def before_scenario(self) -> None:
        """Called before the stack is reset for the next scenario (see :meth:`after_scenario`)."""
        if self._restart and self.process is not None:
            self._restart = False
            self.process.stop()
            self.process.port = 0
            try:
                self.process.start()
            except GatewayProcessError as exc:
                raise CannotJudge(Category.SETUP, f"the gateway could not be started again: {exc}") from None
        if self._wait_window:
            self._wait_window = False
            pause(self.window + 0.2)
        if self._quiet:
            self._quiet = False
            self.stack.n8n.clear_faults()  # what the last scenario held back may now arrive: before, not in, the next
            last = [len(self.stack.n8n.received())]

            def quiet() -> bool:
                now = len(self.stack.n8n.received())
                settled, last[0] = now == last[0], now
                return settled

            wait_until(quiet, QUIET_LIMIT, interval=QUIET)

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - stopping everything else matters more than one failed stop
                pass
        self._closers.clear()

    def __enter__(self) -> Environment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


REAL_BATCH_WINDOW = 2.0  # real seconds: the Universal Batcher's window when n8n itself runs the workflows


def _load_factory(spec: str) -> Callable[..., Any]:
    """``MODULE:CALLABLE`` imported from the current directory or the installed packages."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises on import is said in one line
        raise CannotJudge(Category.SETUP, f"--gateway-app {spec}: {type(exc).__name__}: {exc}") from None
    if not callable(found):
        raise CannotJudge(Category.USAGE, f"--gateway-app {spec} is not callable: give a factory (settings, clock) -> "
                          "ASGI app")
    return cast(Callable[..., Any], found)
