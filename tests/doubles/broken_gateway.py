"""Gateways with one planted defect each: the catalogue that proves the acceptance run and ``contract`` name them.

Run as ``python tests/doubles/broken_gateway.py NAME --port N`` with the gateway's usual environment. Each is
our gateway with exactly one thing broken, the way a real implementation gets it wrong: a different client
auth, another API version, a missing field, a limiter with an off-by-design bug, a permissive CORS setup.
A :class:`Double` carries its whole build (the rewrites of the gateway's calls, the module attributes it
patches, the layer in front of it) and the defect code the harness must report for it
(tests/integration/test_defect_catalogue.py). The ways to break are in :mod:`tests.doubles.breakage`.
"""

from __future__ import annotations

import argparse
import importlib
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from avito_gateway.app import create_app
from avito_gateway.settings import load_settings

try:
    from tests.doubles import breakage as b
except ModuleNotFoundError:  # run as a script: its own folder is on the path, the repository is not
    import breakage as b  # type: ignore[no-redef]

__all__ = ["DOUBLES", "Double", "Patch", "build", "main"]

Transport = Callable[[], httpx.AsyncBaseTransport]


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
        module_name, _, name = self.target.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            raise AttributeError(f"{self.target} does not exist: the double would break nothing (renamed?)")
        setattr(module, name, self.replace(getattr(module, name)))


@dataclass(frozen=True, kw_only=True)
class Double:
    defect: str  # the code the harness must name
    what: str
    scenarios: tuple[str, ...]  # names (or parts) of the scenarios that must catch it: the run stays short
    contract: bool = False  # also caught by `avito-harness contract`
    avito: Transport | None = None  # the gateway's calls to Avito go through this
    n8n: Transport | None = None  # its forwards to n8n go through this
    patches: tuple[Patch, ...] = ()
    wrap: Callable[[Any], Any] | None = None  # a layer in front of the app

    def build(self, port: int) -> Any:
        """The double's ASGI app, configured from the environment like our gateway."""
        for patch in self.patches:
            patch.apply()
        app = create_app(load_settings(server_port=port), avito_transport=self.avito() if self.avito else None,
                         n8n_transport=self.n8n() if self.n8n else None)
        return self.wrap(app) if self.wrap is not None else app


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


def _rewrite(before: b.Before | None = None, after: b.After | None = None) -> Transport:
    return lambda: b.Rewrite(before=before, after=after)


DOUBLES: dict[str, Double] = {
    "token_basic": Double(defect="token_basic_auth", what="client credentials by HTTP Basic",
                          scenarios=("Subscribing", "A send arrives"), avito=_rewrite(b.token_by_basic)),
    "send_v2": Double(defect="wrong_api_version", what="sends on /messenger/v2", scenarios=("A send arrives",),
                      avito=_rewrite(b.version("/messenger/v1/", "/messenger/v2/", "/messages"))),
    "chats_v1": Double(defect="wrong_api_version", what="lists chats on /messenger/v1",
                       scenarios=("Monitoring endpoints",), avito=_rewrite(b.version("/messenger/v2/", "/messenger/v1/",
                                                                                   "/chats"))),
    "messages_v2": Double(defect="wrong_api_version", what="reads messages on /messenger/v2",
                          scenarios=("answer was lost",),
                          avito=_rewrite(b.version("/messenger/v3/", "/messenger/v2/", "/messages"))),
    "subscribe_v2": Double(defect="wrong_api_version", what="subscribes on /messenger/v2/webhook",
                           scenarios=("Subscribing",),
                           avito=_rewrite(b.version("/messenger/v3/webhook", "/messenger/v2/webhook", "/webhook"))),
    "send_no_type": Double(defect="send_without_type", what="send body without type", scenarios=("A send arrives",),
                           avito=_rewrite(b.send_without_type)),
    "probe_400": Double(defect="probe_not_200", what="answers the {} probe 400", scenarios=("Subscribing",),
                        wrap=b.probe_400),
    "bad_json_500": Double(defect="webhook_not_200", what="answers a broken webhook 500", scenarios=("broken webhook",),
                           wrap=b.bad_json_500),
    "no_voice_url": Double(defect="media_link_missing", what="voice forwarded without voice_url",
                           scenarios=("voice message is downloaded",), n8n=_rewrite(b.forwarded(b.no_voice_url))),
    "no_image_url": Double(defect="media_link_missing", what="image forwarded without its url",
                           scenarios=("photo arrives",), n8n=_rewrite(b.forwarded(b.no_image_url))),
    "client_name_seller": Double(defect="wrong_client_name", what="client_name is the shop's",
                                 scenarios=("A text message",), n8n=_rewrite(b.forwarded(b.seller_as_client_name))),
    "twice_to_n8n": Double(defect="duplicate_forwarded", what="every message posted to n8n twice",
                           scenarios=("Duplicate deliveries",), n8n=b.TwiceToN8n),
    "seller_reply_dropped": Double(defect="seller_reply_lost", what="seller replies not forwarded",
                                   scenarios=("seller's reply from",), patches=_forwarded({"customer"})),
    "seller_reply_unmarked": Double(defect="seller_reply_unmarked", what="seller replies marked as the customer's",
                                    scenarios=("seller's reply from",), n8n=_rewrite(b.forwarded(b.seller_unmarked))),
    "echo_forwarded": Double(defect="echo_forwarded", what="echoes and system messages forwarded",
                             scenarios=("seller's reply from",),
                             patches=_forwarded({"customer", "seller_reply", "echo", "system"})),
    "n8n_failure_dropped": Double(defect="message_lost", what="a failed forward counts as delivered",
                                  scenarios=("503 twice",), n8n=_rewrite(after=b.failure_is_success)),
    "limiter_off": Double(defect="rate_limit_not_enforced", what="no rate limit", scenarios=("own limit holds",),
                          patches=_limiter(b.NeverRefuses)),
    "limiter_stuck": Double(defect="rate_limit_never_resets", what="the window restarts on every request",
                            scenarios=("own limit holds",), patches=_limiter(b.WindowRestartsOnEveryRequest)),
    "blind_retry": Double(defect="send_posted_twice", what="sends retried blindly after a lost answer or 5xx",
                          scenarios=("answer was lost",), avito=b.BlindRetry),
    "403_final": Double(defect="expired_token_not_refreshed", what="Avito's 403 for an expired token not refreshed",
                        scenarios=("expired token",), avito=_rewrite(after=b.forbidden_is_final)),
    "token_preview": Double(defect="secret_leaked", what="/api/token shows 20 characters of the token",
                            scenarios=("Monitoring endpoints",), avito=_rewrite(after=b.remember_token),
                            wrap=b.token_preview),
    "open_without_key": Double(defect="api_open_without_key", what="serves /api to anyone when API_KEY is empty",
                               scenarios=("without API_KEY",), patches=_key_optional(), wrap=b.open_without_key),
    "cors_any": Double(defect="cors_wildcard_credentials", what="CORS * with credentials",
                       scenarios=("closed to anyone",), contract=True, wrap=b.cors_any_origin),
    "validation_422": Double(defect="validation_not_spec_body", what="FastAPI's 422 for a bad request",
                             scenarios=("without text",), contract=True, wrap=b.fastapi_422),
}


def build(name: str, port: int) -> Any:
    return DOUBLES[name].build(port)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("defect", choices=sorted(DOUBLES))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.defect, args.port), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
