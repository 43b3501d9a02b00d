"""The Avito accounts one gateway serves: the drop-in single account from the environment, plus more from
``ACCOUNTS_FILE`` (YAML or JSON), one entry per shop.

Each account has its own credentials, its own API keys (a key acts for its account only), its own n8n URL
and tenant, and its own webhook secret. With more than one account every account names its Avito
``user_id``: webhooks are routed by it. Secrets may stay out of the file: ``client_secret_env: NAME`` reads
the environment variable ``NAME``.

```yaml
accounts:
  - name: shop-north
    user_id: 100000001
    client_id: north-client-id
    client_secret_env: NORTH_CLIENT_SECRET
    api_keys: [north-key-1]
    n8n_webhook_url: http://127.0.0.1:5678/webhook/avito
    tenant: north
```

``avito_api_base_url`` (optional) sends one account's Avito calls elsewhere than ``AVITO_API_BASE_URL``: a
sandbox, a recording proxy, or one shard of a simulator serving a share of the shops.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avito_gateway.settings import ConfigError, GatewaySettings

__all__ = ["Account", "DEFAULT_ACCOUNT", "load_accounts"]

DEFAULT_ACCOUNT = "default"
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{8,128}")
#: What an HTTP header value can carry intact: printable ASCII (a tenant goes out as X-Tenant, a key comes in as
#: X-API-Key; anything else is garbled on the way or can never match).
_HEADER_RE = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class Account:
    name: str
    client_id: str
    client_secret: str
    user_id: int | None
    api_keys: tuple[str, ...]
    n8n_webhook_url: str | None
    tenant: str | None = None
    webhook_secret: str | None = None
    avito_api_base_url: str | None = None  # None: AVITO_API_BASE_URL

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_ACCOUNT


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME_RE.pattern)
    user_id: int | None = Field(None, ge=1)
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(None, min_length=1)
    client_secret_env: str | None = Field(None, min_length=1)
    api_keys: list[str] = Field(default_factory=list)
    api_key: str | None = None
    n8n_webhook_url: str | None = None
    tenant: str | None = Field(None, min_length=1, max_length=200)
    webhook_secret: str | None = Field(None, pattern=_SECRET_RE.pattern)
    avito_api_base_url: str | None = None


def _from_file(path: Path, settings: GatewaySettings) -> list[Account]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"ACCOUNTS_FILE {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"ACCOUNTS_FILE {str(path)!r} is not YAML or JSON: {str(exc).splitlines()[0]}") from None
    entries: Any = document.get("accounts") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"ACCOUNTS_FILE {str(path)!r} must hold a list of accounts (accounts: [...])")
    found = []
    for index, raw in enumerate(entries):
        where = f"ACCOUNTS_FILE account #{index + 1}"
        try:
            entry = _Entry.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "entry"
            raise ConfigError(f"{where}: {field}: {first['msg']}") from None
        where = f"ACCOUNTS_FILE account {entry.name!r}"
        secret = entry.client_secret
        if entry.client_secret and entry.client_secret_env:
            raise ConfigError(f"{where}: give client_secret or client_secret_env, not both (which one is meant?)")
        if entry.client_secret_env:
            secret = os.environ.get(entry.client_secret_env)
            if not secret:
                raise ConfigError(f"{where}: client_secret_env names {entry.client_secret_env}, which is not set")
        if not secret:
            raise ConfigError(f"{where}: client_secret (or client_secret_env) is required")
        keys = tuple([*entry.api_keys, *([entry.api_key] if entry.api_key else [])])
        if not keys:
            raise ConfigError(f"{where}: api_keys is required: an account nobody can call cannot send")
        found.append(Account(entry.name, entry.client_id, secret, entry.user_id, keys,
                             entry.n8n_webhook_url or settings.n8n_webhook_url, entry.tenant, entry.webhook_secret,
                             entry.avito_api_base_url))
    return found


def load_accounts(settings: GatewaySettings) -> tuple[Account, ...]:
    """Every account this gateway serves, checked; the environment's account (if any) first.
    Raises :class:`ConfigError` naming the problem."""
    accounts: list[Account] = []
    if settings.avito_client_id.strip():
        accounts.append(Account(DEFAULT_ACCOUNT, settings.avito_client_id, settings.avito_client_secret,
                                settings.avito_user_id, (settings.api_key,), settings.n8n_webhook_url, None,
                                settings.webhook_secret))
    if settings.accounts_file is not None:
        accounts += _from_file(settings.accounts_file, settings)
    if not accounts:
        raise ConfigError("no Avito account: set AVITO_CLIENT_ID (and AVITO_CLIENT_SECRET, API_KEY) or ACCOUNTS_FILE")
    seen: dict[str, set[Any]] = {"name": set(), "user_id": set(), "key": set(), "secret": set()}
    for account in accounts:
        _check_values(account)
        if account.webhook_secret is not None:
            if account.webhook_secret in seen["secret"]:
                raise ConfigError(f"account {account.name!r}: its webhook_secret is another account's too; a secret "
                                  "path names one account (its webhooks would be refused or filed under the other)")
            seen["secret"].add(account.webhook_secret)
        if account.name in seen["name"]:
            raise ConfigError(f"account name {account.name!r} is used twice")
        if len(accounts) > 1 and account.user_id is None:
            what = "AVITO_USER_ID" if account.is_default else f"ACCOUNTS_FILE account {account.name!r}: user_id"
            raise ConfigError(f"{what} is required when the gateway serves several accounts (webhooks are routed by it)")
        if account.user_id is not None and account.user_id in seen["user_id"]:
            raise ConfigError(f"Avito user_id {account.user_id} is given to two accounts")
        for key in account.api_keys:
            if not key.strip() or key != key.strip():
                raise ConfigError(f"account {account.name!r}: an API key is empty or has surrounding spaces")
            if key in seen["key"]:
                raise ConfigError(f"account {account.name!r}: an API key is given to two accounts; a key acts for one")
            seen["key"].add(key)
        seen["name"].add(account.name)
        seen["user_id"].add(account.user_id)
    return tuple(accounts)


def _check_values(account: Account) -> None:
    """Values that would let the gateway start but never work for this account."""
    where = "the environment's account" if account.is_default else f"account {account.name!r}"
    if account.tenant is not None and not _HEADER_RE.fullmatch(account.tenant):
        raise ConfigError(f"{where}: tenant must be printable ASCII without line breaks (it is sent to n8n as the "
                          f"X-Tenant header), got {account.tenant!r}")
    for key in account.api_keys:
        if key and not _HEADER_RE.fullmatch(key):
            raise ConfigError(f"{where}: an API key must be printable ASCII: HTTP headers carry nothing else, so "
                              "no caller could ever send it")
    for url, what in ((account.n8n_webhook_url, "N8N_WEBHOOK_URL" if account.is_default
                       else f"{where}: n8n_webhook_url"), (account.avito_api_base_url, f"{where}: avito_api_base_url")):
        _check_url(url, what)


def _check_url(url: str | None, what: str) -> None:
    if url is not None:
        try:
            parts = urlsplit(url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and _HEADER_RE.fullmatch(url)
        except ValueError:
            usable = False
        if not usable:
            raise ConfigError(f"{what} must be an absolute http(s) URL, got {url!r}")
