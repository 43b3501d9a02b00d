"""Customers' personal data replaced by consistent fakes, so a recording can be committed to a repository.

Names, message texts, phone numbers and image and voice links in the JSON bodies of every entry (Avito's
answers and the webhooks alike) become Faker's, seeded: the same original gets the same fake everywhere in the
recording (a customer keeps one fake name across the chat list, the chat and the webhook), and the same seed
gives the same fakes in every run. Ids, statuses and timestamps stay: they are what the replay matches on.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = ["Anonymizer"]

NAME_KEYS = {"name", "first_name", "last_name", "client_name", "author_name", "user_name"}
TEXT_KEYS = {"text", "message_text", "comment"}
PHONE = re.compile(r"(?:\+7|8)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}")


class Anonymizer:
    def __init__(self, seed: int = 0) -> None:
        from faker import Faker  # the `record` extra: installed, Faker's pytest plugin slows every pytest run

        self.fake = Faker("ru_RU")
        self.seed = seed
        self._seen: dict[tuple[str, str], str] = {}

    def _consistent(self, kind: str, original: str) -> str:
        key = (kind, original)
        if key not in self._seen:
            digest = int(hashlib.sha256(f"{self.seed}:{kind}:{original}".encode()).hexdigest()[:12], 16)
            self.fake.seed_instance(digest)
            self._seen[key] = {
                "name": lambda: str(self.fake.first_name()),
                "text": lambda: str(self.fake.sentence(nb_words=max(2, min(12, len(original.split()))))),
                "phone": lambda: str(self.fake.phone_number()),
                "url": lambda: f"https://media.example.invalid/{digest:012x}",
            }[kind]()
        return self._seen[key]

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, str) and value:
            low = key.lower()
            if low in NAME_KEYS:
                return self._consistent("name", value)
            if low in TEXT_KEYS:
                return self._consistent("text", value)
            if low.endswith("url") or re.fullmatch(r"\d+x\d+", low):  # voice_url, url, image sizes "640x480"
                return self._consistent("url", value) if value.startswith("http") else value
        return self.walk(value)

    def walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if isinstance(value, str):
            return PHONE.sub(lambda m: self._consistent("phone", m.group(0)), value)
        return value

    def _body(self, holder: dict[str, Any] | None) -> None:
        if not holder or not holder.get("text"):
            return
        try:
            holder["text"] = json.dumps(self.walk(json.loads(holder["text"])), ensure_ascii=False)
        except ValueError:
            holder["text"] = PHONE.sub(lambda m: self._consistent("phone", m.group(0)), holder["text"])

    def entry(self, item: dict[str, Any]) -> dict[str, Any]:
        """A HAR entry with its bodies anonymized (in place, and returned)."""
        self._body(item["request"].get("postData"))
        self._body(item["response"].get("content"))
        return item
