"""/api/messages/send (+ /image, /bulk): what BAT OUT Avito and mailings call."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import UploadFile

from avito_gateway.deps import Services, require_api_key, services
from avito_gateway.errors import GatewayError, ImageTooLargeError, InvalidRequestError
from avito_gateway.models import ERRORS, BulkAnswer, SendAnswer
from avito_gateway.ratelimit import take_slot
from avito_gateway.sending import Posting

__all__ = ["router"]

router = APIRouter(prefix="/api/messages", dependencies=[Depends(require_api_key)], tags=["send"])

#: Any non-blank id except the path words ``.`` and ``..`` (they would climb out of the chat's URL at Avito).
CHAT_ID_PATTERN = r"^(?:[^.\s]|[^.\s]\S|\.[^.\s]|\S{3,})$"
ChatId = Field(min_length=1, max_length=200, pattern=CHAT_ID_PATTERN)
ChatIdStr = Annotated[str, Field(min_length=1, max_length=200, pattern=CHAT_ID_PATTERN)]


class SendText(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chat_id: str = ChatId
    text: str = Field(min_length=1, max_length=1000)


class SendImageByUrl(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chat_id: str = ChatId
    image_url: str = Field(min_length=1, max_length=2048)


class BulkItem(BaseModel):
    chat_id: str = ChatId
    text: str = Field(min_length=1, max_length=1000)


class SendBulk(BaseModel):
    """Either one ``text`` for many ``chat_ids``, or ``messages`` with a text each (not both)."""

    model_config = ConfigDict(extra="forbid")
    chat_ids: list[ChatIdStr] | None = Field(None, min_length=1, max_length=500)
    text: str | None = Field(None, min_length=1, max_length=1000)
    messages: list[BulkItem] | None = Field(None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_form(self) -> SendBulk:
        if self.messages is None and not (self.chat_ids and self.text):
            raise ValueError("give chat_ids + text, or messages: [{chat_id, text}]")
        if self.messages is not None and (self.chat_ids is not None or self.text is not None):
            raise ValueError("give chat_ids + text, or messages: [{chat_id, text}], not both")
        return self

    def items(self) -> list[BulkItem]:
        if self.messages is not None:
            return self.messages
        return [BulkItem(chat_id=c, text=self.text or "") for c in self.chat_ids or []]


def _sent_body(chat_id: str, sent: dict[str, Any], message: str) -> dict[str, Any]:
    response = {"id": sent.get("id"), "created": sent.get("created")}
    if "image_id" in sent:
        response["image_id"] = sent["image_id"]
    return {"success": True, "chat_id": chat_id, "message": message, "response": response}


@router.post("/send", response_model=SendAnswer, responses=ERRORS["send"])
async def send(body: SendText, s: Services = Depends(services),
               idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> JSONResponse:
    async def run(posting: Posting) -> tuple[int, dict[str, Any]]:
        await take_slot(s.limiter)
        sent = await s.sender.send_text(body.chat_id, body.text, posting)
        return 200, _sent_body(body.chat_id, sent, "Message sent")

    status, answer = await s.keys.run(idempotency_key, {"op": "send", **body.model_dump()}, run)
    return JSONResponse(answer, status_code=status)


@router.post("/send/image", response_model=SendAnswer, responses=ERRORS["send"])
async def send_image(request: Request, s: Services = Depends(services),
                     idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> JSONResponse:
    """Multipart (``chat_id`` + ``file``) or JSON ``{"chat_id", "image_url"}`` (allowed hosts only)."""
    ctype = request.headers.get("content-type", "")
    if "multipart/form-data" in ctype:
        form = await request.form(max_files=1, max_part_size=s.settings.image_url_max_bytes)
        chat_id, upload = form.get("chat_id"), form.get("file") or form.get("image")
        if not isinstance(chat_id, str) or not chat_id.strip():
            raise InvalidRequestError("Invalid request: chat_id is required", details={"fields": {"chat_id": "required"}})
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("Invalid request: file is required", details={"fields": {"file": "required"}})
        data = await upload.read()
        if len(data) > s.settings.image_url_max_bytes:
            raise ImageTooLargeError("image is too large")
        name, media = upload.filename or "image", upload.content_type or "application/octet-stream"
        # the image itself: another image of the same size under the same key is another request (422)
        fingerprint: dict[str, Any] = {"op": "image", "chat_id": chat_id, "sha256": hashlib.sha256(data).hexdigest()}
        source = None
    else:
        try:
            parsed = SendImageByUrl.model_validate_json(await request.body())
        except ValueError as exc:
            raise InvalidRequestError(f"Invalid request: {exc}".splitlines()[0],
                                      details={"expected": "multipart chat_id + file, or JSON {chat_id, image_url}"}) from None
        chat_id, source, data, name, media = parsed.chat_id, parsed.image_url, b"", "", ""
        fingerprint = {"op": "image", "chat_id": chat_id, "image_url": source}

    async def run(posting: Posting) -> tuple[int, dict[str, Any]]:
        nonlocal data, name, media
        await take_slot(s.limiter)
        if source is not None:
            data, name, media = await s.images.fetch(source)
        sent = await s.sender.send_image(chat_id, data, name, media, posting)
        return 200, _sent_body(chat_id, sent, "Image sent")

    status, answer = await s.keys.run(idempotency_key, fingerprint, run)
    return JSONResponse(answer, status_code=status)


@router.post("/send/bulk", response_model=BulkAnswer, responses=ERRORS["api"])
async def send_bulk(body: SendBulk, s: Services = Depends(services),
                    idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> dict[str, Any]:
    """Bounded concurrency; one result per chat; partial failure reported item by item."""
    items = body.items()
    if not items or len(items) > s.settings.bulk_max_items:
        raise InvalidRequestError(f"bulk sends take 1 to {s.settings.bulk_max_items} messages")
    gate = asyncio.Semaphore(s.settings.bulk_concurrency)

    async def one(index: int, item: BulkItem) -> dict[str, Any]:
        key = f"{idempotency_key}:{index}:{item.chat_id}" if idempotency_key else None

        async def run(posting: Posting) -> tuple[int, dict[str, Any]]:
            await take_slot(s.limiter)
            sent = await s.sender.send_text(item.chat_id, item.text, posting)
            return 200, _sent_body(item.chat_id, sent, "Message sent")

        async with gate:
            try:
                _, answer = await s.keys.run(key, {"op": "send", **item.model_dump()}, run)
                return answer
            except GatewayError as exc:
                return {"chat_id": item.chat_id, **exc.body()}

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    failed = sum(1 for r in results if not r.get("success"))
    return {"success": failed == 0, "total": len(results), "sent": len(results) - failed, "failed": failed,
            "results": results}
