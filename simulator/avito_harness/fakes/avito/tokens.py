"""OAuth tokens: issue, check, expire on the clock, rotate refresh tokens.

Avito facts mirrored: one ``/token`` endpoint for three grants; 24 h lifetime;
``client_credentials`` tokens carry no scopes and work on every operation;
``authorization_code`` and ``refresh_token`` answers add ``refresh_token`` and
a comma-separated ``scope``; a refresh returns a new refresh token (the old
one stops working: Avito says to store both new values).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from avito_harness.fakes.avito.errors import OAuthError
from avito_harness.fakes.clock import Clock

__all__ = ["Token", "TokenStore", "ALL_SCOPES"]

ALL_SCOPES = "messenger:read,messenger:write,user:read"
NO_SCOPES: frozenset[str] = frozenset()  # one for every client-credentials token: 216 bytes each otherwise


@dataclass(slots=True)
class Token:
    value: str
    user_id: int
    expires_at: float
    scopes: frozenset[str]
    grant: str


@dataclass
class _Grant:
    user_id: int
    client_id: str
    scope: str
    expires_at: float | None = None


class TokenStore:
    """All tokens of the fake Avito, across accounts (a token names its account)."""

    def __init__(self, clock: Clock, rng: random.Random, ttl: int = 86400, *, max_live: int = 10_000) -> None:
        self.clock, self.rng, self.ttl, self.max_live = clock, rng, ttl, max_live
        self._newest: dict[int, deque[str]] = {}  # per account, its access tokens oldest first
        self._lock = threading.Lock()
        self._access: dict[str, Token] = {}
        self._refresh: dict[str, _Grant] = {}
        self._codes: dict[str, _Grant] = {}

    def _secret(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(160):040x}"  # 40 hex digits, drawn from the seeded generator

    def reset(self, *, keep_issued: bool = False) -> None:
        """Forget codes; with ``keep_issued``, access and refresh tokens stay valid (Avito does not forget them
        between two tests: a gateway that runs on keeps the token it holds)."""
        with self._lock:
            self._codes.clear()
            if not keep_issued:
                self._access.clear()
                self._refresh.clear()
                self._newest.clear()

    def _issue(self, user_id: int, grant: str, scope: str | None) -> dict[str, Any]:
        value = self._secret("sim_at_")
        scopes = frozenset(s for s in scope.split(",") if s) if scope else NO_SCOPES
        self._access[value] = Token(value, user_id, self.clock.now() + self.ttl, scopes, grant)
        issued = self._newest.setdefault(user_id, deque())
        issued.append(value)
        while len(issued) > self.max_live:
            self._access.pop(issued.popleft(), None)
        return {"access_token": value, "expires_in": self.ttl, "token_type": "Bearer"}

    def client_credentials(self, user_id: int) -> dict[str, Any]:
        with self._lock:
            return self._issue(user_id, "client_credentials", None)

    def new_code(self, user_id: int, client_id: str, scope: str = ALL_SCOPES) -> str:
        """What Avito's consent page hands back in ``?code=``; valid 10 minutes, once."""
        with self._lock:
            code = self._secret("sim_code_")
            self._codes[code] = _Grant(user_id, client_id, scope, self.clock.now() + 600)
            return code

    def _with_refresh(self, grant: _Grant, kind: str) -> dict[str, Any]:
        answer = self._issue(grant.user_id, kind, grant.scope)
        refresh = self._secret("sim_rt_")
        self._refresh[refresh] = _Grant(grant.user_id, grant.client_id, grant.scope)
        return {**answer, "refresh_token": refresh, "scope": grant.scope}

    def exchange_code(self, client_id: str, code: str) -> dict[str, Any]:
        with self._lock:
            grant = self._codes.pop(code, None)
            if grant is None or grant.client_id != client_id:
                raise OAuthError("invalid_grant", "authorization code is invalid, used or issued to another client")
            if grant.expires_at is not None and self.clock.now() > grant.expires_at:
                raise OAuthError("invalid_grant", "authorization code has expired")
            return self._with_refresh(grant, "authorization_code")

    def refresh(self, client_id: str, refresh_token: str) -> dict[str, Any]:
        with self._lock:
            grant = self._refresh.pop(refresh_token, None)
            if grant is None or grant.client_id != client_id:
                raise OAuthError("invalid_grant", "refresh token is invalid, already used or issued to another client")
            return self._with_refresh(grant, "refresh_token")

    def find(self, value: str) -> Token | None:
        return self._access.get(value)  # one dict lookup is atomic: no lock (every request asks)

    def expire(self, user_id: int | None = None) -> int:
        """Make tokens (of one account, or all) expire now; returns how many."""
        now = self.clock.now()
        with self._lock:
            hit = [t for t in self._access.values() if user_id is None or t.user_id == user_id]
            for token in hit:
                token.expires_at = min(token.expires_at, now)
            return len(hit)

    def issued(self, user_id: int) -> list[str]:
        with self._lock:
            return [t.value for t in self._access.values() if t.user_id == user_id]

    def is_live(self, token: Token) -> bool:
        return self.clock.now() < token.expires_at
