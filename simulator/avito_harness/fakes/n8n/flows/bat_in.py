"""BAT IN Avito: validate the normalized message; for voice, download, transcribe and merge the words."""

from __future__ import annotations

import json
from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from avito_harness.paths import contracts_dir

__all__ = ["BatIn", "Rejected", "contract_errors", "extra_fields", "schema_path"]


class Rejected(ValueError):
    """The message is not a valid normalized message; recorded with this reason, never dropped silently."""


def schema_path() -> Path:
    return contracts_dir() / "normalized-message.schema.json"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def contract_errors(message: Any) -> list[str]:
    """Every way ``message`` breaks the normalized-message contract (empty: it is valid)."""
    errors = sorted(_validator().iter_errors(message), key=lambda e: list(e.path))
    return [f"{'/'.join(str(p) for p in e.path) or '(message)'}: {e.message}" for e in errors]


def extra_fields(message: Any) -> list[str]:
    """Fields the contract does not name (top level and ``media``): allowed, reported as information."""
    if not isinstance(message, dict):
        return []
    schema: dict[str, Any] = dict(_validator().schema)  # type: ignore[arg-type]
    known = set(schema["properties"])
    extras = [k for k in message if k not in known]
    media = message.get("media")
    if isinstance(media, dict):
        extras += [f"media.{k}" for k in media if k not in schema["properties"]["media"]["properties"]]
    return sorted(extras)


class BatIn:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    @staticmethod
    def validate(message: Any) -> None:
        errors = contract_errors(message)
        if errors:
            raise Rejected(errors[0])

    def process(self, message: dict[str, Any], *, stt_url: str | None, stt_key: str, stt_model: str,
                download_timeout: float) -> tuple[dict[str, Any], str | None]:
        """The message ready for the Tenant Resolver, and the voice problem if any (the message goes on anyway)."""
        self.validate(message)
        out = deepcopy(message)
        media = out["media"]
        if not media["has_voice"]:
            return out, None
        try:
            words = self._transcribe(media["voice_url"], stt_url, stt_key, stt_model, download_timeout)
        except _VoiceProblem as exc:
            return out, str(exc)
        media["voice_transcribed_text"] = words
        out["text"] = "\n".join(p for p in (out["text"].strip(), words.strip()) if p)
        return out, None

    def _transcribe(self, url: str | None, stt_url: str | None, key: str, model: str, timeout: float) -> str:
        if not url:
            raise _VoiceProblem("voice message without voice_url")
        if not stt_url:
            raise _VoiceProblem("no speech-to-text service configured")
        try:
            audio = self.http.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            raise _VoiceProblem(f"voice download failed: {type(exc).__name__}") from None
        if audio.status_code != 200:
            raise _VoiceProblem(f"voice download answered {audio.status_code}")
        try:
            answer = self.http.post(
                f"{stt_url.rstrip('/')}/v1/audio/transcriptions",
                headers={"Authorization": f"Bearer {key}"},
                files={"file": ("voice.wav", audio.content, audio.headers.get("content-type", "audio/wav"))},
                data={"model": model, "language": "ru", "response_format": "json"},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise _VoiceProblem(f"transcription failed: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise _VoiceProblem(f"transcription answered {answer.status_code}: {answer.text[:200]}")
        return str(answer.json().get("text", ""))


class _VoiceProblem(Exception):
    pass
