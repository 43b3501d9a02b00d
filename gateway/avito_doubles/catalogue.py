"""Gateways with one planted defect each: the catalogue that proves the acceptance run and ``contract`` name them.

Each is our gateway with exactly one thing broken, the way a real implementation gets it wrong: a different client
auth, another API version, a missing field, a limiter with an off-by-design bug, a permissive CORS setup.
A :class:`Double` carries its whole build (the rewrites of the gateway's calls, the module attributes it
patches, the layer in front of it) and the defect code the harness must report for it
(tests/integration/test_defect_catalogue.py). The ways to break are in :mod:`avito_doubles.calls` (the gateway's
calls), :mod:`avito_doubles.fronts` (layers in front of its app) and :mod:`avito_doubles.limiters`. A double
marked ``embedded`` breaks a promise only the virtual-clock scenarios see: it runs in-process
(``run --gateway-app avito_doubles.embedded:NAME``); the others run as ``python -m avito_doubles serve NAME``.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from avito_doubles import calls as c
from avito_doubles import fronts as f
from avito_doubles import limiters as lim
from avito_gateway.app import create_app
from avito_gateway.settings import GatewaySettings, load_settings

__all__ = ["DOUBLES", "VARIANTS", "Double", "Patch", "build", "find"]

#: A layer of the gateway's calls: given the transport behind it (None: the network), the transport in front.
Layer = Callable[[httpx.AsyncBaseTransport | None], httpx.AsyncBaseTransport]


@dataclass(frozen=True)
class Patch:
    """A module attribute of the gateway replaced by ``replace(original)``. A target that is not there is refused:
    assigning it would create a new attribute nobody reads, and the double would silently break nothing."""

    target: str  # "avito_gateway.module.NAME"
    replace: Callable[[Any], Any]

    @classmethod
    def value(cls, target: str, value: Any) -> Patch:
        return cls(target, lambda _: value)

    def apply(self) -> None:
        """Once per process (an in-process double builds its app for every scenario)."""
        if self.target in APPLIED:
            return
        module_name, _, name = self.target.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            raise AttributeError(f"{self.target} does not exist: the double would break nothing (renamed?)")
        setattr(module, name, self.replace(getattr(module, name)))
        APPLIED.add(self.target)


#: The patches in place in this process.
APPLIED: set[str] = set()


@dataclass(frozen=True, kw_only=True)
class Double:
    defect: str  # the code the harness must name ("" for a legitimate variant, which must pass)
    what: str
    scenarios: tuple[str, ...]  # names (or parts) of the scenarios that must catch it: the run stays short
    contract: bool = False  # also caught by `avito-harness contract`
    avito: tuple[Layer, ...] = ()  # the gateway's calls to Avito go through these (the first is outermost)
    n8n: tuple[Layer, ...] = ()  # its forwards to n8n go through these
    patches: tuple[Patch, ...] = ()
    wraps: tuple[Callable[[Any], Any], ...] = ()  # layers in front of the app (the first is outermost)
    args: tuple[str, ...] = ()  # what the run that catches it needs besides the scenarios
    defects: tuple[str, ...] = ()  # a double with several defects: every code the run must name
    settings: tuple[tuple[str, Any], ...] = ()  # the gateway's settings changed (lower-case names)
    embedded: bool = False  # only the virtual-clock scenarios see it: judged in-process (--gateway-app)

    @property
    def codes(self) -> tuple[str, ...]:
        return self.defects or ((self.defect,) if self.defect else ())

    def build(self, port: int) -> Any:
        """The double's ASGI app, configured from the environment like our gateway (its patches first: one may
        change what the settings require)."""
        for patch in self.patches:
            patch.apply()
        return self._app(load_settings(server_port=port, **dict(self.settings)))

    def in_process(self, settings: Mapping[str, Any], clock: Any) -> Any:
        """The double in-process on the harness's clock (the factory ``--gateway-app`` calls)."""
        f.NOW[0] = clock.now
        return self._app(GatewaySettings(_env_file=None, **{**dict(settings), **dict(self.settings)}), clock)

    def _app(self, settings: GatewaySettings, clock: Any = None) -> Any:
        for patch in self.patches:
            patch.apply()
        app = create_app(settings, clock=clock, avito_transport=_stacked(self.avito), n8n_transport=_stacked(self.n8n))
        for wrap in reversed(self.wraps):
            app = wrap(app)
        return app

    @classmethod
    def combined(cls, what: str, *names: str) -> Double:
        """Several doubles' defects in one gateway: each must still be named, each once."""
        parts = [DOUBLES[n] for n in names]
        return cls(defect=parts[0].defect, defects=tuple(p.defect for p in parts), what=what,
                   scenarios=tuple(dict.fromkeys(s for p in parts for s in p.scenarios)),
                   avito=tuple(layer for p in parts for layer in p.avito), n8n=tuple(layer for p in parts for layer in p.n8n),
                   patches=tuple(x for p in parts for x in p.patches), wraps=tuple(w for p in parts for w in p.wraps),
                   settings=tuple(x for p in parts for x in p.settings), embedded=any(p.embedded for p in parts))


def _stacked(layers: tuple[Layer, ...]) -> httpx.AsyncBaseTransport | None:
    transport: httpx.AsyncBaseTransport | None = None
    for layer in reversed(layers):
        transport = layer(transport)
    return transport


def _forwarded(kinds: set[str]) -> tuple[Patch, ...]:
    """The kinds of webhook messages the gateway forwards to n8n (the normalizer's rule and its two readers)."""
    kept = frozenset(kinds)
    return tuple(Patch.value(f"avito_gateway.{m}.FORWARDED", kept) for m in ("normalize", "inbound", "routes.webhooks"))


def _limiter(cls: type) -> tuple[Patch, ...]:
    return (Patch.value("avito_gateway.app.SlidingWindowLimiter", cls),)


def _key_optional() -> tuple[Patch, ...]:
    """Starts without API_KEY; the account gets a key nobody knows, and /api asks for none (with the wrapper)."""
    return (Patch.value("avito_gateway.settings.REQUIRED", ("AVITO_CLIENT_ID", "AVITO_CLIENT_SECRET")),
            Patch("avito_gateway.app.load_accounts", lambda accounts: lambda s: accounts(
                s.model_copy(update={"api_key": s.api_key or secrets.token_hex(16)}))))


def _rewrite(before: c.Before | None = None, after: c.After | None = None) -> tuple[Layer, ...]:
    return (lambda inner: c.Rewrite(before=before, after=after, inner=inner),)


def _layer(cls: type[c.Layer]) -> tuple[Layer, ...]:
    return (lambda inner: cls(inner),)


DOUBLES: dict[str, Double] = {
    "token_basic": Double(defect="token_basic_auth", what="client credentials by HTTP Basic",
                          scenarios=("Subscribing", "A send arrives"), avito=_rewrite(c.token_by_basic)),
    "send_v2": Double(defect="wrong_api_version", what="sends on /messenger/v2", scenarios=("A send arrives",),
                      avito=_rewrite(c.version("/messenger/v1/", "/messenger/v2/", "/messages"))),
    "chats_v1": Double(defect="wrong_api_version", what="lists chats on /messenger/v1",
                       scenarios=("Monitoring endpoints",),
                       avito=_rewrite(c.version("/messenger/v2/", "/messenger/v1/", "/chats"))),
    "messages_v2": Double(defect="wrong_api_version", what="reads messages on /messenger/v2",
                          scenarios=("answer was lost", "history is read"),
                          avito=_rewrite(c.version("/messenger/v3/", "/messenger/v2/", "/messages"))),
    "subscribe_v2": Double(defect="wrong_api_version", what="subscribes on /messenger/v2/webhook",
                           scenarios=("Subscribing",),
                           avito=_rewrite(c.version("/messenger/v3/webhook", "/messenger/v2/webhook", "/webhook"))),
    "send_no_type": Double(defect="send_without_type", what="send body without type", scenarios=("A send arrives",),
                           avito=_rewrite(c.send_without_type)),
    "probe_400": Double(defect="probe_not_200", what="answers the {} probe 400", scenarios=("Subscribing",),
                        wraps=(f.probe_400,)),
    "bad_json_500": Double(defect="webhook_not_200", what="answers a broken webhook 500", scenarios=("broken webhook",),
                           wraps=(f.bad_json_500,)),
    "no_voice_url": Double(defect="media_link_missing", what="voice forwarded without voice_url",
                           scenarios=("voice message is downloaded",), n8n=_rewrite(c.forwarded(c.no_voice_url))),
    "no_image_url": Double(defect="media_link_missing", what="image forwarded without its url",
                           scenarios=("photo arrives",), n8n=_rewrite(c.forwarded(c.no_image_url))),
    "client_name_seller": Double(defect="wrong_client_name", what="client_name is the shop's",
                                 scenarios=("A text message",), n8n=_rewrite(c.forwarded(c.seller_as_client_name))),
    "twice_to_n8n": Double(defect="duplicate_forwarded", what="every message posted to n8n twice",
                           scenarios=("Duplicate deliveries",), n8n=_layer(c.TwiceToN8n)),
    "seller_reply_dropped": Double(defect="seller_reply_lost", what="seller replies not forwarded",
                                   scenarios=("seller's reply from",), patches=_forwarded({"customer"})),
    "seller_reply_unmarked": Double(defect="seller_reply_unmarked", what="seller replies marked as the customer's",
                                    scenarios=("seller's reply from",), n8n=_rewrite(c.forwarded(c.seller_unmarked))),
    "echo_forwarded": Double(defect="echo_forwarded", what="echoes and system messages forwarded",
                             scenarios=("seller's reply from",),
                             patches=_forwarded({"customer", "seller_reply", "echo", "system"})),
    "n8n_failure_dropped": Double(defect="message_lost", what="a failed forward counts as delivered",
                                  scenarios=("503 twice",), n8n=_rewrite(after=c.failure_is_success)),
    "limiter_off": Double(defect="rate_limit_not_enforced", what="no rate limit", scenarios=("own limit holds",),
                          patches=_limiter(lim.NeverRefuses)),
    "limiter_stuck": Double(defect="rate_limit_never_resets", what="the window restarts on every request",
                            scenarios=("own limit holds",), patches=_limiter(lim.WindowRestartsOnEveryRequest)),
    "limiter_holds_forever": Double(defect="rate_limit_never_resets",
                                    what="over the limit, requests are held and the window never reopens",
                                    scenarios=("own limit holds",), patches=_limiter(lim.NeverRefuses),
                                    wraps=(f.holds_forever,), args=("--request-timeout", "3")),
    "blind_retry": Double(defect="send_posted_twice", what="sends retried blindly after a lost answer or 5xx",
                          scenarios=("answer was lost",), avito=_layer(c.BlindRetry)),
    "retry_after_ignored": Double(defect="retry_after_ignored", what="Avito's 429 retried after 0.1 s, not Retry-After",
                                  scenarios=("Retry-After is waited out",), avito=_layer(c.RetriesTooSoon)),
    "403_final": Double(defect="expired_token_not_refreshed", what="Avito's 403 for an expired token not refreshed",
                        scenarios=("expired token",), avito=_rewrite(after=c.forbidden_is_final)),
    "token_preview": Double(defect="secret_leaked", what="/api/token shows 20 characters of the token",
                            scenarios=("Monitoring endpoints",), avito=_rewrite(after=c.remember_token),
                            wraps=(f.token_preview,)),
    "open_without_key": Double(defect="api_open_without_key", what="serves /api to anyone when API_KEY is empty",
                               scenarios=("without API_KEY",), patches=_key_optional(), wraps=(f.open_without_key,)),
    "cors_any": Double(defect="cors_wildcard_credentials", what="CORS * with credentials",
                       scenarios=("closed to anyone",), contract=True, wraps=(f.cors_any_origin,)),
    "validation_422": Double(defect="validation_not_spec_body", what="FastAPI's 422 for a bad request",
                             scenarios=("without text",), contract=True, wraps=(f.fastapi_422,)),
    "read_not_forwarded": Double(defect="read_not_forwarded", what="marking read answered, never sent to Avito",
                                 scenarios=("marked read",), wraps=(f.read_not_forwarded,)),
    "webhook_answered_late": Double(defect="webhook_too_slow", what="the webhook answered after the forward (3 s)",
                                    scenarios=("slow n8n",), wraps=(f.webhook_answered_late,)),
    "text_mangled": Double(defect="text_changed", what="emoji dropped and HTML entities decoded on the way to n8n",
                           scenarios=("Symbols, quotes and emoji",), n8n=_rewrite(c.forwarded(c.mangled_text))),
    "ids_swapped": Double(defect="ids_misplaced", what="external_user_id is the shop's account, not the customer",
                          scenarios=("A text message",), n8n=_rewrite(c.forwarded(c.ids_swapped))),
    "dedupes_by_text": Double(defect="message_lost", what="a message with the text of the one before is dropped",
                              scenarios=("same words written twice",), n8n=_layer(c.DedupesByText)),
    "errors_not_spec_shape": Double(defect="avito_error_misreported", what="Avito's errors as {ok, message}",
                                    scenarios=("a server error",), wraps=(f.errors_without_spec_shape,)),
    "text_truncated": Double(defect="text_changed", what="texts cut to 500 characters, both ways",
                             scenarios=("longest arrives whole", "longest is sent whole"),
                             n8n=_rewrite(c.forwarded(c.truncated_text)), avito=_rewrite(c.truncated_send)),
    "timestamp_in_ms": Double(defect="timestamp_wrong", what="Avito's created (seconds) read as milliseconds",
                              scenarios=("A text message",), n8n=_rewrite(c.forwarded(c.timestamp_in_ms))),
    "backlog_newest_first": Double(defect="order_broken", what="what n8n refused is retried newest first",
                                   scenarios=("down for a few seconds",), n8n=_layer(c.NewestFirstBacklog)),
    "gives_up_after_a_minute": Double(defect="message_lost", what="a message n8n refused 6 times is given up",
                                      scenarios=("refuses a message for hours",), embedded=True,
                                      settings=(("outbox_max_attempts", 6),)),
    "health_always_healthy": Double(defect="health_blind", what="/health says healthy whatever the gateway can do",
                                    scenarios=("no longer lets in",), wraps=(f.always_healthy,)),
    "token_failure_kept": Double(defect="stays_broken", what="a refused token request is not asked again for an hour",
                                 scenarios=("no longer lets in",),
                                 patches=(Patch.value("avito_gateway.avito_token.REFUSED_BACKOFF", (3600.0, 3600.0)),)),
    "key_prefix_accepted": Double(defect="api_key_not_enforced", what="X-API-Key compared by its first 8 characters",
                                  scenarios=("closed to anyone",), wraps=(f.key_prefix_accepted,)),
    "limiter_per_endpoint": Double(defect="rate_limit_not_enforced", what="the limit counted per operation",
                                   scenarios=("own limit holds",), patches=_limiter(lim.NeverRefuses),
                                   wraps=(f.per_endpoint_limit,)),
    "idempotency_forgets_fast": Double(defect="send_posted_twice", what="an Idempotency-Key remembered for 10 s",
                                       scenarios=("end of its retry window",), embedded=True,
                                       wraps=(f.idempotency_forgets,), args=("--profile", "full")),
}
#: Several defects at once: one run must name each, each once (issue 25).
DOUBLES["blind_retry_wrong_mapping"] = Double.combined(
    "blind retries of 5xx sends, and Avito's errors not in SPEC's shape", "blind_retry", "errors_not_spec_shape")
DOUBLES["six_at_once"] = Double.combined(
    "Basic token, sends on v2, the probe answered 400, null image links, every message twice, a token prefix shown",
    "token_basic", "send_v2", "probe_400", "no_image_url", "twice_to_n8n", "token_preview")

#: Legitimate variants of what SPEC allows: each must pass under --profile seed (and a false alarm is a bug).
VARIANTS: dict[str, Double] = {
    "throttles_within_limit": Double(defect="", what="holds requests over its limit instead of answering 429",
                                     scenarios=("own limit holds",), patches=_limiter(lim.NeverRefuses),
                                     wraps=(f.throttles_within_limit,)),
    "spec_shaped_errors": Double(defect="", what="Avito's errors passed through in SPEC's shape only, always 400",
                                 scenarios=("Avito answers a send with",), wraps=(f.spec_shaped_errors,)),
    "image_by_url": Double(defect="", what="an image send takes JSON {chat_id, image_url}", scenarios=("An image send",),
                           wraps=(f.image_by_url,)),
    "bulk_as_messages": Double(defect="", what="a bulk send takes {messages: [{chat_id, text}]}",
                               scenarios=("A bulk send",), wraps=(f.bulk_as_messages,)),
}


def find(name: str) -> Double:
    """A double or a variant by name; KeyError names the known ones."""
    known = {**DOUBLES, **VARIANTS}
    if name not in known:
        raise KeyError(f"no double {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def build(name: str, port: int) -> Any:
    return find(name).build(port)

