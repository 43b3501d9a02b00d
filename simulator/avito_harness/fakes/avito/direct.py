"""The four hot calls answered straight from the connection, without ASGI: what the request layers would answer.

Under load the ASGI plumbing (a task per request, message dicts, four middlewares passing them on) cost more than
the calls themselves. The server's protocol (``stack/http_protocol.py``) asks :meth:`DirectCalls.takes` once the
headers are in and :meth:`DirectCalls.answer` once the body is; this layer does what the layers would do for
the request (learn the public URL, journal it, let an armed fault or a near miss go the long way, the fast
route's handler) and hands back the status, headers and bytes. Anything it does not answer exactly as the
layers would, before any side effect, it declines: the request then takes the ASGI path whole.
"""

from __future__ import annotations

import logging
import time as _perf

from starlette.responses import JSONResponse, Response

from avito_harness.fakes.avito.backend import AvitoBackend
from avito_harness.fakes.avito.errors import stock_error_body
from avito_harness.fakes.avito.fastpath import Answer, Call, FastRoutes, Handler
from avito_harness.fakes.avito.near_misses import SEND, NearMisses, serving
from avito_harness.fakes.faults import Scope
from avito_harness.fakes.journal import MAX_BODY, JournalMiddleware

__all__ = ["DirectCalls", "Reply"]

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]
Route = tuple[Handler, tuple[str, ...]]
_log = logging.getLogger("uvicorn.error")


class DirectCalls:
    """The hot calls without ASGI, for a server protocol that offers them (see the module's docstring)."""

    def __init__(self, *, fast: FastRoutes, backend: AvitoBackend, journal: JournalMiddleware,
                 near_misses: NearMisses) -> None:
        self.fast, self.backend, self.journal, self.near_misses = fast, backend, journal, near_misses

    def takes(self, method: str, path: str) -> Route | None:
        """Worth holding the body for: a hot call (its route), and no fault armed (faults take the ASGI path)."""
        return None if self.backend.faults.armed else self.fast.route(method, path)

    def answer(self, scope: Scope, body: bytes, found: Route) -> Reply | None:
        """The answer to the whole request, or None (nothing done: the ASGI path answers it)."""
        if self.backend.faults.armed or not self._as_layers_pass_it(scope, body, found[1]):
            return None
        handler, groups = found
        if self.backend.public_url is None:
            _learn_public_url(self.backend, scope)
        journal = self.journal
        # the account as the journal's resolver finds it: a messenger route's first group is the path's user id
        account = int(groups[0]) if groups else journal.account_of(scope)
        arrived, started = journal.now(), _perf.perf_counter()
        try:
            response = self.fast.outcome(handler, Call(scope, groups, body))
        except Exception as exc:  # a bug: Avito's 500, and the traceback to the server's log (as uvicorn does)
            _log.error("Exception in a direct answer", exc_info=exc)
            response = JSONResponse(stock_error_body(500), status_code=500)
        if response is None:
            return None
        reply = _reply(response)
        kept = body if len(body) <= MAX_BODY * 4 else {"truncated": True, "bytes": len(body)}
        journal.record(scope, kept, reply[0], reply[2], time=arrived, started=started, account=account)
        return reply

    def _as_layers_pass_it(self, scope: Scope, body: bytes, groups: tuple[str, ...]) -> bool:
        """Neither a near miss (served as another call) nor a send that waits for its echo's delivery."""
        if serving(self.backend.settings):
            if not self.near_misses.routed(scope):
                return False
            if scope["method"] == "POST" and SEND.fullmatch(scope["path"]) and b'"type"' not in body:
                return False
        if scope["method"] == "POST" and len(groups) == 2:  # a send: the only hot call that may wait
            state = self.backend.accounts.get(int(groups[0]))
            return state is None or not state.settings.delivery.echo_before_response
        return True


def _reply(response: Answer | Response) -> Reply:
    if isinstance(response, Answer):
        return response.status, response.headers, response.body
    return response.status_code, response.raw_headers, bytes(response.body)


def _learn_public_url(backend: AvitoBackend, scope: Scope) -> None:
    """As ``PublicUrlMiddleware`` does on the ASGI path."""
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    if host:
        backend.public_url = f"{scope.get('scheme', 'http')}://{host}"
