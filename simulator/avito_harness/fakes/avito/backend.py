"""Everything the fake Avito holds, across accounts, with one reset.

Like moto's ``BackendDict``: per-account :class:`AvitoState` in
:class:`AccountStores`, plus what spans accounts (credentials, tokens, media
links, the webhook dispatcher, rate-limit counters, faults and journal).
"""

from __future__ import annotations

import random
import threading
import time as _perf
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avito_harness.fakes.account_stores import AccountStores
from avito_harness.fakes.avito.errors import ForbiddenError, NotFoundError, OAuthError, UnauthorizedError
from avito_harness.fakes.avito.media import IMAGE_SIZES
from avito_harness.fakes.avito.models import Account, AccountSettings, Chat, DeliveryPolicy, Message
from avito_harness.fakes.avito.ratelimit import RateLimiter, RateLimits
from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.avito.tokens import Token, TokenStore
from avito_harness.fakes.avito.webhooks import WebhookDispatcher
from avito_harness.fakes.clock import Clock
from avito_harness.fakes.faults import FaultSet
from avito_harness.fakes.journal import Journal
from avito_harness.fakes.reasons import Reason
from avito_harness.fakes.settings import SimSettings

if TYPE_CHECKING:
    import httpx

__all__ = ["Activity", "AvitoBackend", "VOICE_LINK_TTL"]

#: Avito's voice links work for one hour after getVoiceFiles.
VOICE_LINK_TTL = 3600


@dataclass(slots=True)
class Activity:
    """A new message in a chat, as the people in it see it (for transcripts)."""

    seen_at: float
    account: int
    chat_id: str
    message_id: str
    who: str  # customer | seller | avito
    type: str
    text: str | None


@dataclass
class _VoiceLink:
    user_id: int
    voice_id: str
    expires_at: float


class AvitoBackend:
    """The fake Avito's whole state; ``reset()`` returns it to the seeded start."""

    def __init__(
        self,
        settings: SimSettings,
        clock: Clock,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.seed = settings.seed
        self.rng = random.Random(self.seed)
        self.public_url: str | None = None
        self._public_base: tuple[str | None, str] = (None, "")  # public_url, and it without a trailing slash
        self._lock = threading.RLock()
        self.accounts: AccountStores[AvitoState] = AccountStores(self._new_state)
        self._by_client: dict[str, int] = {}
        self.tokens = TokenStore(clock, self.rng, settings.token_ttl, max_live=settings.max_tokens_per_account)
        self.voice_texts: dict[tuple[int, str], str] = {}
        self.activity: deque[Activity] = deque(maxlen=2000)  # the newest messages' who and what, for transcripts
        self._voice_links: dict[str, _VoiceLink] = {}
        self.dispatcher = WebhookDispatcher(
            clock,
            timeout=settings.webhook_timeout,
            allowed_hosts=settings.webhook_allowed_hosts,
            transport=transport,
        )
        self.limiter = RateLimiter()
        self.faults = FaultSet("avito", seed=self.seed)
        self.journal = Journal("avito")
        self.reset()

    # --- accounts ----------------------------------------------------------
    def _new_state(self, user_id: int) -> AvitoState:
        account = Account(
            user_id=user_id,
            name=f"Аккаунт {user_id}",
            client_id=f"sim-client-{user_id}",
            client_secret=f"sim-secret-{user_id}",
        )
        settings = AccountSettings(
            auth_error_status=self.settings.auth_error_status,
            messages_envelope=self.settings.messages_envelope,
            delivery=DeliveryPolicy(),
            rate_limits=RateLimits(),
        )
        return AvitoState(
            account, clock=self.clock, rng=self.rng, media=self, settings=settings, on_message=self._on_message,
            max_messages=self.settings.max_messages_per_chat,
        )

    def create_account(
        self,
        user_id: int | None = None,
        *,
        name: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        **extra: Any,
    ) -> AvitoState:
        with self._lock:
            if user_id is None:
                user_id = self.rng.randint(10**8, 10**9 - 1)
                while user_id in self.accounts:
                    user_id += 1
            if user_id in self.accounts:
                raise ForbiddenError(f"Account {user_id} already exists")
            state = self.accounts[user_id]
            account = state.account
            account.name = name or account.name
            account.client_id = client_id or account.client_id
            account.client_secret = client_secret or account.client_secret
            for key, value in extra.items():
                if value is not None:
                    setattr(account, key, value)
            if account.client_id in self._by_client:
                raise ForbiddenError(f"client_id {account.client_id!r} is taken by another account")
            self._by_client[account.client_id] = user_id
            return state

    def account(self, user_id: int) -> AvitoState:
        state = self.accounts.get(user_id)
        if state is None:
            raise NotFoundError(f"Account {user_id} not found")
        return state

    def by_credentials(self, client_id: str, client_secret: str) -> AvitoState:
        with self._lock:
            user_id = self._by_client.get(client_id)
        state = self.accounts.get(user_id) if user_id is not None else None
        if state is None or state.account.client_secret != client_secret:
            raise OAuthError("invalid_client", "client_id or client_secret is wrong", status=401)
        return state

    # --- auth --------------------------------------------------------------
    def authenticate(self, authorization: str | None, *, scope: str | None = None) -> tuple[AvitoState, Token]:
        """Resolve ``Authorization: Bearer``; 401 (or the account's 403 variant) when missing/unknown/expired."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.find(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise UnauthorizedError()
        state = self.account(token.user_id)
        if not self.tokens.is_live(token):
            if state.settings.auth_error_status == 403:
                raise ForbiddenError()
            raise UnauthorizedError()
        if scope is not None and token.scopes and scope not in token.scopes:
            raise ForbiddenError(f"The token lacks the {scope} scope")
        return state, token

    def auth_hint(self, authorization: str | None) -> tuple[Reason, str]:
        """Why a request was refused, as a code and in words, for the tester (never in Avito's answer)."""
        scheme, _, value = (authorization or "").partition(" ")
        if not value.strip():
            return Reason.NO_AUTHORIZATION, "no Authorization header: Avito wants Bearer <access_token>"
        if scheme.lower() != "bearer":
            return Reason.NOT_BEARER, f"Authorization scheme {scheme!r}: Avito wants Bearer <access_token>"
        token = self.tokens.find(value.strip())
        if token is None:
            return Reason.TOKEN_UNKNOWN, "a token this Avito never issued"
        if not self.tokens.is_live(token):
            return Reason.TOKEN_EXPIRED, "the token expired; a client gets a new one from /token"
        return Reason.TOKEN_NOT_ALLOWED, "the token lacks a scope or names another account"

    def authorized(self, authorization: str | None) -> bool:
        """A live token of this Avito: a request Avito's servers would process (faults only hit those)."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.find(value.strip()) if scheme.lower() == "bearer" else None
        return token is not None and self.tokens.is_live(token)

    def account_of_token(self, authorization: str | None) -> int | None:
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.find(value.strip()) if scheme.lower() == "bearer" else None
        return token.user_id if token else None

    # --- media (MediaLinks) ------------------------------------------------
    def _base(self) -> str:
        public = self.public_url
        if public is None:
            return f"http://{self.settings.host}:{self.settings.avito_port}".rstrip("/")
        if self._public_base[0] is not public:  # every chat of a page asks: trimmed once per URL learnt
            self._public_base = (public, public.rstrip("/"))
        return self._public_base[1]

    def image_sizes(self, key: str) -> dict[str, str]:
        base = self._base()
        return {size: f"{base}/media/images/{key}/{size}.png" for size in IMAGE_SIZES}

    def image_url(self, key: str, size: str) -> str:
        return f"{self._base()}/media/images/{key}/{size}.png"

    def register_voice(self, user_id: int, voice_id: str, text: str) -> None:
        with self._lock:
            self.voice_texts[(user_id, voice_id)] = text

    def voice_link(self, user_id: int, voice_id: str) -> str:
        with self._lock:
            link = "".join(self.rng.choice("0123456789abcdef") for _ in range(32))
            self._voice_links[link] = _VoiceLink(user_id, voice_id, self.clock.now() + VOICE_LINK_TTL)
        return f"{self._base()}/media/voice/{link}.wav"

    def voice_file(self, link: str) -> str:
        """The words behind a voice link; 403 once the hour is over (like an expired CDN link)."""
        with self._lock:
            found = self._voice_links.get(link)
            if found is None:
                raise NotFoundError("Voice file not found")
            if self.clock.now() >= found.expires_at:
                raise ForbiddenError("Voice link expired: request a new one with getVoiceFiles")
            return self.voice_texts[(found.user_id, found.voice_id)]

    # --- events ------------------------------------------------------------
    def _on_message(self, state: AvitoState, message: Message, chat: Chat) -> Any:
        author = message.author_id
        who = "customer" if author == chat.customer_id else ("avito" if author == 0 else "seller")
        text = message.content.get("text")
        # a deque's append is atomic, and its readers copy it whole at once (list() holds the GIL throughout)
        self.activity.append(Activity(_perf.perf_counter(), state.user_id, chat.id, message.id, who, message.type,
                                      text if type(text) is str else None))
        return self.dispatcher.dispatch(state, message, chat)

    # --- reset -------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Fresh stores, links, deliveries, limits, faults, journal and RNG; tokens already issued stay valid."""
        from avito_harness.fakes.avito.seed import seed_demo_data

        with self._lock:
            if seed is not None:
                self.seed = seed
            self.rng.seed(self.seed)
            self.accounts.reset()
            self._by_client.clear()
            self.tokens.reset(keep_issued=True)  # accounts come back with the same ids: their tokens stay valid
            self.voice_texts.clear()
            self._voice_links.clear()
            self.activity.clear()
            self.dispatcher.reset()
            self.limiter.reset()
            self.faults.reset(self.seed)
            self.journal.clear()
            s = self.settings
            main = self.create_account(
                s.avito_user_id, name=s.avito_account_name, client_id=s.avito_client_id, client_secret=s.avito_client_secret
            )
            if s.demo_data:
                seed_demo_data(main, seed=self.seed)
            self.activity.clear()  # the demo history is not part of any test's story

    def close(self) -> None:
        self.dispatcher.close()
