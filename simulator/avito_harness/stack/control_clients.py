"""Python clients for the fakes' control planes (``/_sim/...``), over HTTP.

They work the same against an in-process :class:`~avito_harness.stack.Stack` and
against the containers of ``docker-compose.test.yml``.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["AvitoSim", "N8nSim", "SimClientError", "SttSim"]


class SimClientError(RuntimeError):
    """A control call failed; the message carries the fake's own error text."""


class _Control:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise SimClientError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def close(self) -> None:
        self.http.close()

    # --- shared control ----------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        self._call("POST", "/_sim/reset", params={} if seed is None else {"seed": seed})

    def clock(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_sim/clock")
        return result

    def advance(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sim/clock/advance", json={"seconds": seconds})
        return result

    def freeze(self, at: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sim/clock/freeze", json={"at": at})
        return result

    def add_fault(self, preset: str | None = None, **rule: Any) -> dict[str, Any]:
        """Add a fault rule, e.g. ``add_fault("rate_limited_429", route="POST /messenger/*", times=2)``."""
        if preset is not None:
            rule["preset"] = preset
        result: dict[str, Any] = self._call("POST", "/_sim/faults", json=rule)
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/faults")["faults"]
        return result

    def unfired_faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/faults/unfired")["faults"]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        result: list[dict[str, Any]] = self._call("GET", "/_sim/journal", params=params)["requests"]
        return result

    def export_scenario(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_sim/scenario")
        return result

    def load_scenario(self, doc: dict[str, Any]) -> None:
        self._call("POST", "/_sim/scenario", json=doc)


class AvitoSim(_Control):
    """Control of the fake Avito: accounts, chats, "the customer says", deliveries."""

    def create_account(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sim/accounts", json=fields)
        return result

    def account(self, user_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/_sim/accounts/{user_id}")
        return result

    def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/accounts")["accounts"]
        return result

    def settings(self, user_id: int, **settings: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", f"/_sim/accounts/{user_id}/settings", json=settings)
        return result

    def add_item(self, user_id: int, title: str, price: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/_sim/accounts/{user_id}/items", json={"title": title, "price": price}
        )
        return result

    def create_chat(self, user_id: int, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/_sim/accounts/{user_id}/chats", json=fields)
        return result

    def chat(self, user_id: int, chat_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/_sim/accounts/{user_id}/chats/{chat_id}")
        return result

    def customer_says(self, user_id: int, chat_id: str, text: str | None = None, **fields: Any) -> dict[str, Any]:
        """Inject a message into the chat as the customer (``type=`` voice, image, ... too)."""
        body = {**fields, **({"text": text} if text is not None else {})}
        result: dict[str, Any] = self._call("POST", f"/_sim/accounts/{user_id}/chats/{chat_id}/messages", json=body)
        return result

    def tokens(self, user_id: int) -> list[str]:
        result: list[str] = self._call("GET", f"/_sim/accounts/{user_id}/tokens")["tokens"]
        return result

    def expire_tokens(self, user_id: int) -> int:
        result: int = self._call("POST", f"/_sim/accounts/{user_id}/tokens/expire")["expired"]
        return result

    def deliveries(self, *, account: int | None = None, wait_count: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"wait_count": wait_count, "timeout": timeout}
        if account is not None:
            params["account"] = account
        result: list[dict[str, Any]] = self._call("GET", "/_sim/webhooks/deliveries", params=params)["deliveries"]
        return result


class N8nSim(_Control):
    """Control of the fake n8n: what arrived, waiting for it, clearing it."""

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        params = {"path": path} if path else {}
        result: list[dict[str, Any]] = self._call("GET", "/_sim/received", params=params)["received"]
        return result

    def wait_for(self, count: int = 1, *, timeout: float = 5.0, path: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"count": count, "timeout": timeout}
        if path:
            params["path"] = path
        result: list[dict[str, Any]] = self._call("GET", "/_sim/received/wait", params=params)["received"]
        return result

    def clear(self) -> None:
        self._call("DELETE", "/_sim/received")

    def register(self, path: str) -> None:
        """Accept webhooks on another path (n8n answers 404 for unregistered ones)."""
        self._call("POST", "/_sim/webhooks", json={"path": path})

    def invalid(self) -> list[dict[str, Any]]:
        """Messages at /webhook/avito that break the normalized-message contract."""
        result: list[dict[str, Any]] = self._call("GET", "/_sim/received/invalid")["invalid"]
        return result

    def webhook_url(self, path: str = "avito") -> str:
        return f"{self.base_url}/webhook/{path}"

    # --- the flows (the CRM side) -------------------------------------------
    def flows(self, **changes: Any) -> dict[str, Any]:
        """Read or change the flow settings: mode, batch_window, operator_mode, tenant_mapping, ai_rules, ..."""
        if changes:
            result: dict[str, Any] = self._call("PATCH", "/_sim/flows/config", json=changes)
        else:
            result = self._call("GET", "/_sim/flows/config")
        return result

    def inject(self, message: dict[str, Any]) -> None:
        self._call("POST", "/_sim/flows/inject", json=message)

    def appeals(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/appeals")["appeals"]
        return result

    def appeal(self, appeal_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/_sim/flows/appeals/{appeal_id}")
        return result

    def answer(self, appeal_id: int, text: str) -> dict[str, Any]:
        """An operator's answer to an appeal."""
        result: dict[str, Any] = self._call("POST", f"/_sim/flows/appeals/{appeal_id}/answer", json={"text": text})
        return result

    def history(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/history")["messages_history"]
        return result

    def rejected(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/rejected")["rejected"]
        return result

    def stubs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/stubs")["sent"]
        return result

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/events", params={"kind": kind} if kind else {})["events"]
        return result

    def failed_executions(self) -> list[dict[str, Any]]:
        """A real n8n's failed executions in this scenario (always empty for the Python flows)."""
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/executions")["failed"]
        return result

    def settle(self, timeout: float = 30.0, *, batches: bool = True) -> None:
        """A real n8n: no execution runs and (``batches``) every batch window has closed, in real time; the Python
        flows: at once."""
        self._call("POST", "/_sim/flows/settle", params={"timeout": timeout, "batches": batches})

    def wait_event(self, kind: str, count: int = 1, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        params = {"kind": kind, "count": count, "timeout": timeout}
        result: list[dict[str, Any]] = self._call("GET", "/_sim/flows/wait", params=params)["events"]
        return result


class SttSim(_Control):
    """Control of the fake speech-to-text."""

    def transcript(self, text: str, *, sha256: str | None = None) -> None:
        """Answer ``text`` for audio with this digest (or, without one, for any audio without words of its own)."""
        self._call("POST", "/_sim/transcripts", json={"text": text, **({"sha256": sha256} if sha256 else {})})
