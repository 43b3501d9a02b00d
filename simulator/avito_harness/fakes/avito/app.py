"""The fake Avito as an ASGI app: OAuth + Messenger API + media + control plane.

Request layers (outermost first): public URL -> journal -> faults -> fast routes -> FastAPI (auth and
rate limits run as route dependencies, so they apply per operation; the fast routes call the same functions).
Our server (``stack/serve.py``) hands the hot calls to ``app.direct`` first, which does what those layers do
without ASGI's per-request plumbing (``direct.py``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import Response

from avito_harness.fakes.audio import wav_bytes
from avito_harness.fakes.avito import control as avito_control
from avito_harness.fakes.avito import messenger, oauth
from avito_harness.fakes.avito.backend import AvitoBackend
from avito_harness.fakes.avito.direct import DirectCalls
from avito_harness.fakes.avito.errors import install_error_handlers, stock_error_body
from avito_harness.fakes.avito.fastpath import FastRoutes
from avito_harness.fakes.avito.media import IMAGE_SIZES, png_bytes
from avito_harness.fakes.avito.near_misses import NearMisses
from avito_harness.fakes.clock import Clock, SystemClock
from avito_harness.fakes.control import ControlHooks, control_router
from avito_harness.fakes.faults import ASGIApp, FaultMiddleware, Scope
from avito_harness.fakes.journal import JournalMiddleware
from avito_harness.fakes.scenario import apply_common, section
from avito_harness.fakes.settings import SimSettings

if TYPE_CHECKING:
    import httpx

__all__ = ["create_app"]

_PATH_ACCOUNT = re.compile(r"^/messenger/v\d+/accounts/(\d+)(?:/|$)")


def _account_resolver(backend: AvitoBackend) -> Any:
    def account_of(scope: Scope) -> int | None:
        found = _PATH_ACCOUNT.match(scope["path"])
        if found:
            return int(found.group(1))
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return backend.account_of_token(value.decode("latin-1"))
        return None

    return account_of


def create_app(
    settings: SimSettings | None = None,
    *,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
    fast_routes: bool = True,
) -> FakeAvito:
    """Build the fake Avito. ``transport`` replaces the network for webhook delivery (unit tests);
    ``fast_routes=False`` serves the hot calls through the framework routes too (the reference they are held to)."""
    settings = settings or SimSettings()
    clock = clock or SystemClock()
    backend = AvitoBackend(settings, clock, transport=transport)
    if settings.public_host:
        backend.public_url = settings.public_host

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()

    app = FakeAvito(
        lifespan=lifespan,
        title="Fake Avito (avito-harness)",
        description="OAuth, Messenger API and webhooks as Avito serves them, plus /_sim control.",
        redirect_slashes=False,
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
    )
    app.state.backend = backend
    app.state.clock = clock
    install_error_handlers(app)
    app.include_router(oauth.router)
    app.include_router(messenger.router)
    app.include_router(avito_control.router)
    app.state.control = _hooks(backend)
    app.include_router(control_router(app.state.control))

    @app.get("/media/images/{key}/{size}.png", include_in_schema=False)
    async def image(key: str, size: str) -> Response:
        if size not in IMAGE_SIZES:
            return Response(status_code=404)
        width, height = (int(v) for v in size.split("x"))
        return Response(png_bytes(key, width, height), media_type="image/png")

    @app.get("/media/voice/{link}.wav", include_in_schema=False)
    async def voice(link: str) -> Response:
        text = backend.voice_file(link)
        return Response(wav_bytes(text), media_type="audio/wav")

    account_of = _account_resolver(backend)
    fast = FastRoutes(app.framework, backend=backend)
    inner: ASGIApp = FaultMiddleware(fast if fast_routes else app.framework, faults=backend.faults, now=clock.now,
                                     account_of=account_of, error_body=stock_error_body,
                                     eligible=_processed_by_avito(backend))
    near_misses = NearMisses(inner, framework=app, settings=backend.settings)
    journal = JournalMiddleware(near_misses, journal=backend.journal, now=clock.now, account_of=account_of)
    app.front = PublicUrlMiddleware(journal, backend=backend)
    if fast_routes:
        app.direct = DirectCalls(fast=fast, backend=backend, journal=journal, near_misses=near_misses)
    return app


class FakeAvito(FastAPI):
    """FastAPI behind the fake's own pure-ASGI layers (public URL, journal, faults, fast routes), which see every
    request first: the hot calls are answered without entering FastAPI's per-request layers at all."""

    front: ASGIApp | None = None
    direct: DirectCalls | None = None  # the hot calls without ASGI, for a server that offers it (stack/serve.py)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await (self.front or self.framework)(scope, receive, send)

    async def framework(self, scope: Scope, receive: Any, send: Any) -> None:
        """FastAPI itself: routing, validation, the error handlers."""
        await super().__call__(scope, receive, send)


def _processed_by_avito(backend: AvitoBackend) -> Callable[[Scope], bool]:
    """Faults hit only requests Avito would process: a Messenger call with a token Avito refuses gets its 401
    first, so a scenario's fault waits for the call it was written for (else it counts as not exercised)."""

    def eligible(scope: Scope) -> bool:
        if not scope["path"].startswith(("/messenger", "/core")):
            return True
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        return backend.authorized(header.decode("latin-1"))

    return eligible


class PublicUrlMiddleware:
    """Learn the simulator's own URL from the first request, for absolute media links."""

    def __init__(self, app: ASGIApp, *, backend: AvitoBackend) -> None:
        self.app, self.backend = app, backend

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.backend.public_url is None and scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host:
                self.backend.public_url = f"{scope.get('scheme', 'http')}://{host}"
        await self.app(scope, receive, send)


def _hooks(backend: AvitoBackend) -> ControlHooks:
    def export() -> dict[str, Any]:
        return {
            "seed": backend.seed,
            "clock": {"frozen": backend.clock.frozen, "now": backend.clock.now()},
            "avito": {
                "faults": [_rule_data(r.to_dict()) for r in backend.faults.rules()],
                "accounts": [
                    {"user_id": s.user_id, "settings": avito_control.export_settings(s.settings)}
                    for s in backend.accounts.values()
                ],
            },
        }

    def load(doc: dict[str, Any]) -> None:
        apply_common(doc, backend.clock, backend.reset)
        data = section(doc, "avito")
        for entry in data.get("accounts", []):
            user_id = int(entry["user_id"])
            state = backend.accounts.get(user_id) or backend.create_account(
                user_id, name=entry.get("name"), client_id=entry.get("client_id"),
                client_secret=entry.get("client_secret"),
            )
            avito_control.apply_account_settings(state, entry.get("settings", {}))
        for rule in data.get("faults", []):
            backend.faults.add_dict(rule)
        for chat in data.get("chats", []):
            avito_control.seed_recorded_chat(backend, chat)

    return ControlHooks(
        service="avito",
        clock=backend.clock,
        faults=backend.faults,
        journal=backend.journal,
        reset=backend.reset,
        export=export,
        load=load,
    )


def _rule_data(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule as scenario data: its definition without counters and ids."""
    return {k: v for k, v in rule.items() if k not in ("seen", "fired", "id")}
