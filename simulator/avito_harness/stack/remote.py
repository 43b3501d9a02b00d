"""The fakes running elsewhere (containers), driven over HTTP with the same interface as :class:`Stack`.

Each fake has its own clock there, so advancing time advances all of them.
"""

from __future__ import annotations

from typing import Any

from avito_harness.fakes.settings import WEBHOOK_PATH, SimSettings
from avito_harness.stack.control_clients import AvitoSim, N8nSim, SttSim

__all__ = ["RemoteStack", "parse_stack_urls"]


def parse_stack_urls(text: str) -> dict[str, str]:
    """``avito=http://avito:8080,n8n=http://n8n:5678,stt=http://stt:8090``."""
    urls = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    missing = {"avito", "n8n", "stt"} - set(urls)
    if missing:
        raise ValueError(f"--stack-url lacks {', '.join(sorted(missing))}")
    return {k.strip(): v.strip().rstrip("/") for k, v in urls.items()}


class RemoteStack:
    def __init__(self, urls: dict[str, str], settings: SimSettings | None = None) -> None:
        self.urls = urls
        self.settings = settings or SimSettings.from_env()
        self.avito, self.n8n, self.stt = AvitoSim(urls["avito"]), N8nSim(urls["n8n"]), SttSim(urls["stt"])
        self.apps: dict[str, Any] = {}

    def _all(self) -> tuple[AvitoSim, N8nSim, SttSim]:
        return self.avito, self.n8n, self.stt

    @property
    def n8n_webhook_url(self) -> str:
        return f"{self.urls['n8n']}{WEBHOOK_PATH}"

    def reset(self, seed: int | None = None) -> None:
        for client in self._all():
            client.reset(seed)

    def advance(self, seconds: float) -> None:
        for client in (self.stt, self.avito, self.n8n):  # the n8n batcher last: what it calls is already there
            client.advance(seconds)

    def story(self) -> str:
        """What each fake saw (no cross-process ordering: one section per fake)."""
        lines = []
        for name, client in zip(("Avito", "n8n", "STT"), self._all(), strict=True):
            for e in client.journal():
                lines.append(f"{name:<6} {e['method']} {e['path']} -> {e['status']}")
        for ev in self.n8n.events():
            lines.append(f"flows  {ev['kind']} {ev['data']}")
        return "\n".join(lines) or "(nothing happened)"

    def close(self) -> None:
        for client in self._all():
            client.close()
