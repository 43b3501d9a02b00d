"""Who may deliver webhooks: Avito does not sign them, so the gateway's URL carries a secret path segment.

* ``WEBHOOK_SECRET`` set: only ``/webhook/avito/<secret>`` is served (``mode = "secret_path"``).
* Not set: a secret is generated once and kept in ``DATA_DIR/webhook-secret`` (in the shared database when
  replicas share one, so all of them accept it); when the gateway subscribes its own receiver it subscribes
  the secret path. The plain ``/webhook/avito`` stays open for an existing subscription until then
  (``WEBHOOK_PLAIN_PATH=auto``), always (``allow``) or never (``deny``).

Every account has its own secret (``webhook_secret`` in ``ACCOUNTS_FILE``, or generated), so a secret path
names the account its webhooks belong to.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from avito_gateway.accounts import Account
from avito_gateway.clock import Clock
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store

__all__ = ["WebhookAuth", "RECEIVER_PATH", "SECRET_FILE"]

log = logging.getLogger("gateway.webhook")
RECEIVER_PATH = "/webhook/avito"
SECRET_FILE = "webhook-secret"
_SUBSCRIBED_FLAG = "subscribed_with_secret"
#: How often (seconds) a replica looks whether another one subscribed with the secret path.
_FLAG_REFRESH = 5.0


def _load_or_create(path: Path) -> str:
    try:
        found = path.read_text().strip()
        if re.fullmatch(r"[A-Za-z0-9_-]{16,128}", found):
            return found
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


class WebhookAuth:
    """One account's webhook secret and whether its plain path is open; :meth:`open` builds it."""

    def __init__(self, settings: GatewaySettings, store: Store, account: Account, clock: Clock, *, secret: str,
                 subscribed: bool) -> None:
        self.configured = bool(account.webhook_secret)
        self.account, self.store, self.clock, self.secret = account, store, clock, secret
        self.plain_setting = "deny" if self.configured else settings.webhook_plain_path
        self._flag = _SUBSCRIBED_FLAG if account.is_default else f"{_SUBSCRIBED_FLAG}:{account.name}"
        self._subscribed = subscribed  # cached: every plain webhook asks
        self._looked_at = clock.monotonic()

    @classmethod
    async def open(cls, settings: GatewaySettings, store: Store, account: Account, clock: Clock) -> WebhookAuth:
        """The account's secret: configured, else generated once (kept in DATA_DIR, or in the shared database so
        every replica accepts it)."""
        if account.webhook_secret:
            secret = account.webhook_secret
        elif account.is_default and not store.shared:
            secret = _load_or_create(settings.data_dir / SECRET_FILE)
        else:
            secret = await store.meta_once(f"webhook_secret:{account.name}", secrets.token_urlsafe(24))
        flag = _SUBSCRIBED_FLAG if account.is_default else f"{_SUBSCRIBED_FLAG}:{account.name}"
        return cls(settings, store, account, clock, secret=secret, subscribed=await store.get_meta(flag) is not None)

    async def refresh(self) -> None:
        """Another replica may have subscribed with the secret path: looked up at most every few seconds."""
        if not self._subscribed and self.store.shared and self.clock.monotonic() - self._looked_at >= _FLAG_REFRESH:
            self._looked_at = self.clock.monotonic()
            self._subscribed = await self.store.get_meta(self._flag) is not None

    def plain_path_open(self) -> bool:
        """As last known (:meth:`refresh` looks again)."""
        if self.plain_setting == "auto":
            return not self._subscribed
        return self.plain_setting == "allow"

    @property
    def mode(self) -> str:
        """``open`` while anyone who can reach the gateway may post to the plain path, else ``secret_path``."""
        return "open" if self.plain_path_open() else "secret_path"

    def accepts(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.secret.encode())

    def subscription_url(self, url: str) -> str:
        """Our own receiver's URL gets the secret segment; any other URL is subscribed as given."""
        parts = urlsplit(url)
        if parts.path.rstrip("/") != RECEIVER_PATH:
            return url
        return urlunsplit(parts._replace(path=f"{RECEIVER_PATH}/{self.secret}"))

    async def subscribed(self, url: str) -> None:
        if self.secret in url and self.plain_setting == "auto" and not self._subscribed:
            await self.store.set_meta(self._flag, "1")
            self._subscribed = True
            log.info("subscribed with the secret path: the plain /webhook/avito now answers 404")

    def mask(self, text: str) -> str:
        return text.replace(self.secret, "***")

    def warn_if_open(self) -> None:
        if self.mode == "open":
            log.warning("webhook authenticity (account %s): POST /webhook/avito is open to anyone who can reach this gateway; "
                        "subscribe through POST /api/webhook/subscribe (it uses a secret path) or set WEBHOOK_SECRET",
                        self.account.name)
