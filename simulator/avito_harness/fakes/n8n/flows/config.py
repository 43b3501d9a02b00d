"""What the flows can be told: mode, batch window, tenants, AI rules, operator mode, where the gateway is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from avito_harness.fakes.settings import DEMO_API_KEY

__all__ = ["FlowConfig", "DEFAULT_AI_RULES"]

#: The default "AI": the first rule whose pattern (a regular expression) is found in the batch text answers.
DEFAULT_AI_RULES: list[dict[str, str]] = [
    {"match": r"гаранти", "answer": "Здравствуйте{name}! Гарантия на аккумуляторы — 2 года, чек и талон выдаём."},
    {"match": r"налич|есть ли|ещё продаёте|актуальн", "answer": "Здравствуйте{name}! Да, в наличии. Приезжайте или оформим доставку."},
    {"match": r"аккумулятор|акб|ампер|\bah\b|ач", "answer": "Здравствуйте{name}! Подберём аккумулятор: напишите марку, модель и год авто."},
    {"match": r"цен|сколько стоит|скидк", "answer": "Здравствуйте{name}! Цена указана в объявлении, при покупке со сдачей старого АКБ — скидка."},
]
DEFAULT_ANSWER = "Здравствуйте{name}! Спасибо за обращение. Менеджер ответит в ближайшее время."


@dataclass
class FlowConfig:
    mode: Literal["record", "flows"] = "record"
    batch_window: float = 30.0
    tenant_mapping: dict[str, str] = field(default_factory=dict)  # "channel:external_user_id" -> tenant
    default_tenant: str | None = "tenant-default"  # None: unknown clients are rejected
    ai_rules: list[dict[str, str]] = field(default_factory=lambda: [dict(r) for r in DEFAULT_AI_RULES])
    ai_default_answer: str = DEFAULT_ANSWER
    operator_mode: bool = False
    gateway_url: str | None = None
    gateway_api_key: str = DEMO_API_KEY
    gateway_timeout: float = 30.0
    gateway_retries: int = 2
    stt_url: str | None = None
    stt_api_key: str = "sk-sim-test-key"
    stt_model: str = "whisper-1"
    download_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("record", "flows"):
            raise ValueError("mode is 'record' or 'flows'")
        if self.batch_window < 0:
            raise ValueError("batch_window must be >= 0 seconds")
        if self.gateway_retries < 0 or self.gateway_timeout <= 0 or self.download_timeout <= 0:
            raise ValueError("gateway_retries >= 0, timeouts > 0")
        for rule in self.ai_rules:
            if set(rule) != {"match", "answer"}:
                raise ValueError("each AI rule is {match: regex, answer: text}")

    def merged(self, changes: dict[str, Any]) -> FlowConfig:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown flow setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_dict(self, *, hide_secrets: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if hide_secrets:
            out["gateway_api_key"] = "***" if self.gateway_api_key else ""
            out["stt_api_key"] = "***" if self.stt_api_key else ""
        return out
