"""The shops of a load run: Avito accounts with chats in the fake, the gateway's accounts, and the plan file
Locust's users read (shop, chats, API key, where to send), shared by every worker process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["LoadPlan", "Shop", "make_shops"]

FIRST_USER = 300_000_001


@dataclass(frozen=True)
class Shop:
    name: str
    user_id: int
    client_id: str
    client_secret: str
    api_key: str
    webhook_secret: str
    chats: list[str] = field(default_factory=list)
    gateway_url: str = ""  # the replica serving this shop ("": the plan's gateway)
    avito_url: str = ""  # the fake Avito (shard) holding this shop's account ("": the plan's)
    n8n_url: str = ""  # the fake n8n (shard) its gateway forwards to ("": the run's)


@dataclass
class LoadPlan:
    avito_url: str
    gateway_url: str
    shops: list[Shop]
    out_dir: str  # where each Locust process writes what its users sent (one JSON-lines file per process)
    customer_rate: float  # messages a second per shop
    reply_rate: float  # replies a second per shop

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> LoadPlan:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**doc, "shops": [Shop(**s) for s in doc["shops"]]})


def make_shops(avito_url: str, count: int, chats: int, *, shards: list[tuple[str, str]] | None = None) -> list[Shop]:
    """``count`` accounts in the fake Avito, ``chats`` chats each (a customer in each), a fast enough limit; with
    ``shards`` ((avito URL, n8n URL) each), shop n lives on shard n mod len(shards)."""
    shops = []
    with httpx.Client(timeout=30) as client:
        for n in range(count):
            avito, n8n = shards[n % len(shards)] if shards else (avito_url, "")
            user_id = FIRST_USER + n
            shop = Shop(f"shop{n}", user_id, f"load-client-{n}", f"load-secret-{n}", f"load-key-{n}",
                        f"load-webhook-secret-{n:04d}-abcdef", avito_url=avito, n8n_url=n8n)
            client.post(f"{avito}/_sim/accounts", json={"user_id": user_id, "client_id": shop.client_id,
                                                "client_secret": shop.client_secret,
                                                "settings": {"rate_limits": {"per_minute": 100_000}}}).raise_for_status()
            for _ in range(chats):
                answer = client.post(f"{avito}/_sim/accounts/{user_id}/chats", json={"chat_type": "u2u"})
                answer.raise_for_status()
                shop.chats.append(str(answer.json()["id"]))
            shops.append(shop)
    return shops


def accounts_file(shops: list[Shop], n8n_url: str) -> dict[str, Any]:
    """The gateway's ACCOUNTS_FILE for these shops (each forwards to its own path of the fake n8n)."""
    return {"accounts": [{"name": s.name, "user_id": s.user_id, "client_id": s.client_id,
                          "client_secret": s.client_secret, "api_keys": [s.api_key],
                          "n8n_webhook_url": f"{s.n8n_url or n8n_url}/webhook/load", "webhook_secret": s.webhook_secret,
                          "tenant": s.name, **({"avito_api_base_url": s.avito_url} if s.avito_url else {})}
                         for s in shops]}


def write_accounts(shops: list[Shop], n8n_url: str, path: Path) -> Path:
    path.write_text(yaml.safe_dump(accounts_file(shops, n8n_url)), encoding="utf-8")
    return path
