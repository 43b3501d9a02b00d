"""The fake speech-to-text service: OpenAI's ``POST /v1/audio/transcriptions``.

Multipart ``file`` + ``model`` (+ ``language``, ``prompt``, ``temperature``,
``response_format`` json / text / verbose_json), ``Authorization: Bearer``
checked, errors in OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``. It recovers the words from the fake Avito's voice files; other
audio gets a configured transcript or a 400.
"""

from __future__ import annotations

import hmac
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from avito_harness.fakes.audio import SECONDS_PER_WORD
from avito_harness.fakes.clock import Clock, SystemClock
from avito_harness.fakes.control import ControlHooks, control_router
from avito_harness.fakes.faults import FaultMiddleware, FaultSet
from avito_harness.fakes.journal import Journal, JournalMiddleware
from avito_harness.fakes.scenario import apply_common, section
from avito_harness.fakes.settings import SimSettings
from avito_harness.fakes.stt.state import SttState, UnreadableAudioError

__all__ = ["create_app", "openai_error", "MAX_FILE"]

#: OpenAI's upload limit for transcriptions.
MAX_FILE = 25 * 1024 * 1024
FORMATS = ("json", "text", "verbose_json")
MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def openai_error(status: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    kinds = {401: "invalid_request_error", 429: "requests", 500: "server_error", 503: "server_error"}
    text = message or {429: "Rate limit reached for requests", 500: "The server had an error while processing your request.",
                       503: "The engine is currently overloaded, please try again later"}.get(status, "Error")
    return {"error": {"message": text, "type": extra.get("type", kinds.get(status, "invalid_request_error")),
                      "param": extra.get("param"), "code": extra.get("code")}}


class TranscriptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    sha256: str | None = Field(None, pattern="^[0-9a-fA-F]{64}$")


def create_app(settings: SimSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or SimSettings()
    clock = clock or SystemClock()
    state = SttState()
    faults = FaultSet("stt", seed=settings.seed)
    journal = Journal("stt")
    app = FastAPI(title="Fake speech-to-text (avito-harness)", docs_url="/_sim/docs", openapi_url="/_sim/openapi.json")
    app.state.stt = state

    @app.exception_handler(OpenAIError)
    async def _openai(_: Request, exc: OpenAIError) -> JSONResponse:
        body = openai_error(exc.status, exc.message, param=exc.param, code=exc.code, type=exc.kind)
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(openai_error(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        param = str(first["loc"][-1]) if first["loc"] else None
        return JSONResponse(openai_error(400, f"{param}: {first['msg']}", param=param), status_code=400)

    def _check_key(request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise OpenAIError(401, "You didn't provide an API key. You need to provide your API key in an "
                                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        if not hmac.compare_digest(key.encode(), settings.stt_api_key.encode()):
            raise OpenAIError(401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}.", code="invalid_api_key")

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        _check_key(request)
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            raise OpenAIError(400, "Expected multipart/form-data with a 'file' part.", param="file")
        form = await request.form(max_files=1, max_part_size=MAX_FILE)
        try:
            upload, model = form.get("file"), form.get("model")
            fmt = str(form.get("response_format") or "json")
            language = str(form.get("language") or "ru")
            if not isinstance(upload, UploadFile):
                raise OpenAIError(400, "you must provide a file", param="file")
            if not isinstance(model, str) or not model:
                raise OpenAIError(400, "you must provide a model parameter", param="model")
            if model not in MODELS:
                raise OpenAIError(400, f"Invalid model {model!r}: use one of {', '.join(MODELS)}", param="model",
                                  code="model_not_found")
            if fmt not in FORMATS:
                raise OpenAIError(400, f"response_format {fmt!r} is not supported here: use {', '.join(FORMATS)}",
                                  param="response_format")
            audio = await upload.read()
        finally:
            await form.close()
        if len(audio) > MAX_FILE:
            raise OpenAIError(413, "Maximum content size limit (26214400) exceeded.", param="file")
        try:
            text = await anyio.to_thread.run_sync(state.transcribe, audio)
        except UnreadableAudioError as exc:
            raise OpenAIError(400, str(exc), param="file") from None
        if fmt == "text":
            return PlainTextResponse(text + "\n")
        if fmt == "verbose_json":
            duration = round(max(1, len(text.split())) * SECONDS_PER_WORD, 2)
            return JSONResponse({"task": "transcribe", "language": language, "duration": duration, "text": text,
                                 "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text,
                                               "temperature": 0.0, "avg_logprob": -0.1,
                                               "compression_ratio": 1.0, "no_speech_prob": 0.01}]})
        return JSONResponse({"text": text})

    @app.post("/_sim/transcripts", status_code=201)
    async def configure(body: TranscriptBody) -> dict[str, Any]:
        """A transcript for audio with this sha256, or (no sha256) for any audio that has no words of its own."""
        state.configure(digest=body.sha256, text=body.text)
        return {"ok": True}

    def reset(seed: int | None) -> None:
        state.reset()
        faults.reset(seed if seed is not None else settings.seed)
        journal.clear()

    def export() -> dict[str, Any]:
        rules = [{k: v for k, v in r.to_dict().items() if k not in ("seen", "fired", "id")} for r in faults.rules()]
        return {"stt": {"faults": rules}}

    def load(doc: dict[str, Any]) -> None:
        apply_common(doc, clock, reset)
        for rule in section(doc, "stt").get("faults", []):
            faults.add_dict(rule)

    hooks = ControlHooks(service="stt", clock=clock, faults=faults, journal=journal, reset=reset, export=export, load=load)
    app.state.control = hooks
    app.include_router(control_router(hooks))
    app.add_middleware(FaultMiddleware, faults=faults, now=clock.now, account_of=lambda _: None,
                       error_body=openai_error)
    app.add_middleware(JournalMiddleware, journal=journal, now=clock.now, account_of=lambda _: None)
    return app
