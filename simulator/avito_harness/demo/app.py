"""The demo page: the customer's Avito chat on the left, the CRM side on the right, faults to inject.

Plain HTML and a little JavaScript (polling), no build step. The page talks
only to this app; this app talks to the fakes over HTTP (their control
planes), so it works in-process and against the containers alike.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

import anyio
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from avito_harness.fakes.settings import DEMO_USER_ID
from avito_harness.stack.control_clients import AvitoSim, N8nSim

__all__ = ["create_app", "FAULTS"]

USER_ID_DEFAULT = DEMO_USER_ID

#: What the buttons break, and how to undo it.
FAULTS: dict[str, dict[str, Any]] = {
    "n8n_down": {"service": "n8n", "rule": {"route": "POST /webhook/*", "status": 503, "times": None,
                                            "required": False, "name": "demo: n8n down"}},
    "avito_429": {"service": "avito", "rule": {"preset": "rate_limited_429_retry_after", "times": 1, "required": False,
                                               "route": "POST /messenger/v1/accounts/*/chats/*/messages",
                                               "headers": {"Retry-After": "2"}, "name": "demo: Avito 429"}},
    "token_expired": {"service": "avito", "rule": None},
}


class Say(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["text", "image", "voice"] = "text"
    text: str | None = Field(None, max_length=1000)


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["n8n_down", "avito_429", "token_expired"]
    on: bool = True


def create_app(avito_url: str, n8n_url: str, *, user_id: int = USER_ID_DEFAULT, gateway_url: str | None = None) -> FastAPI:
    avito, n8n = AvitoSim(avito_url), N8nSim(n8n_url)
    app = FastAPI(title="avito-harness demo", docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files("avito_harness.demo").joinpath("page.html").read_text(encoding="utf-8")

    def chat_id() -> str:
        chats = avito.account(user_id)["chats"]
        if not chats:
            raise HTTPException(409, "the demo account has no chat")
        found: str = next((c["id"] for c in chats if c["chat_type"] == "u2i"), chats[0]["id"])
        return found

    def state() -> dict[str, Any]:
        cid = chat_id()
        chat = avito.chat(user_id, cid)
        customer = next((u["name"] for u in chat["users"] if u["id"] != user_id), "Покупатель")
        return {
            "chat_id": cid,
            "customer": customer,
            "item": (chat.get("context") or {}).get("value", {}).get("title"),
            "messages": chat["messages"][-40:],
            "user_id": user_id,
            "appeals": n8n.appeals()[-10:],
            "received": [r["body"] for r in n8n.received("avito")][-10:],
            "history": n8n.history()[-10:],
            "events": n8n.events()[-30:],
            "faults": [f["name"] for f in avito.faults() + n8n.faults()],
            "gateway_url": gateway_url,
        }

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/demo")

    @app.get("/demo", response_class=HTMLResponse)
    async def demo() -> str:
        return page

    @app.get("/demo/api/state")
    async def get_state() -> dict[str, Any]:
        return await anyio.to_thread.run_sync(state)

    @app.post("/demo/api/say")
    async def say(body: Say) -> dict[str, Any]:
        if body.kind in ("text", "voice") and not (body.text or "").strip():
            raise HTTPException(400, "type something first")

        def run() -> dict[str, Any]:
            extra = {"type": body.kind} if body.kind != "text" else {}
            return avito.customer_says(user_id, chat_id(), body.text if body.kind != "image" else None, **extra)

        return await anyio.to_thread.run_sync(run)

    @app.post("/demo/api/fault")
    async def fault(body: Fault) -> dict[str, Any]:
        spec = FAULTS[body.kind]

        def run() -> None:
            if body.kind == "token_expired":
                avito.expire_tokens(user_id)
                return
            client = n8n if spec["service"] == "n8n" else avito
            if body.on:
                client.add_fault(**spec["rule"])
            else:
                for rule in client.faults():
                    if rule["name"] == spec["rule"]["name"]:
                        client.http.delete(f"/_sim/faults/{rule['id']}")

        await anyio.to_thread.run_sync(run)
        return {"ok": True}

    @app.post("/demo/api/advance")
    async def advance(seconds: float = 30) -> dict[str, Any]:
        """Move the clock (when the demo runs on a frozen clock)."""
        return await anyio.to_thread.run_sync(avito.advance, seconds)

    return app
