"""The fake speech-to-text: OpenAI's transcription API over the fake Avito's voice files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from avito_harness.fakes.audio import wav_bytes
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import SimSettings
from avito_harness.fakes.stt.app import create_app

KEY = {"Authorization": "Bearer sk-sim-test-key"}
URL = "/v1/audio/transcriptions"


@pytest.fixture
def stt() -> Iterator[TestClient]:
    with TestClient(create_app(SimSettings(), clock=FakeClock())) as client:
        yield client


def _post(stt: TestClient, audio: bytes, headers: dict[str, str] = KEY, **data: str) -> object:
    return stt.post(URL, headers=headers, files={"file": ("voice.wav", audio, "audio/wav")},
                    data={"model": "whisper-1", **data})


def test_recovers_the_words_from_the_voice_file(stt: TestClient) -> None:
    response = _post(stt, wav_bytes("Нужен аккумулятор на Гранту"))
    assert response.status_code == 200 and response.json() == {"text": "Нужен аккумулятор на Гранту"}  # type: ignore[attr-defined]


def test_text_and_verbose_json_formats(stt: TestClient) -> None:
    assert _post(stt, wav_bytes("да"), response_format="text").text == "да\n"  # type: ignore[attr-defined]
    verbose = _post(stt, wav_bytes("два слова"), response_format="verbose_json", language="ru").json()  # type: ignore[attr-defined]
    assert verbose["text"] == "два слова" and verbose["language"] == "ru" and verbose["duration"] > 0
    assert verbose["segments"][0]["text"] == "два слова"


@pytest.mark.parametrize(("headers", "code"), [({}, None), ({"Authorization": "Bearer sk-wrong-key-1234"}, "invalid_api_key")])
def test_key_is_checked_with_openai_errors(stt: TestClient, headers: dict[str, str], code: str | None) -> None:
    response = _post(stt, wav_bytes("x"), headers=headers)
    assert response.status_code == 401  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == "invalid_request_error" and error["code"] == code and "API key" in error["message"]
    assert "sk-wrong-key-1234" not in response.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("files", "data", "param"),
    [
        ({}, {"model": "whisper-1"}, "file"),
        ({"file": ("a.wav", b"x", "audio/wav")}, {}, "model"),
        ({"file": ("a.wav", b"x", "audio/wav")}, {"model": "whisper-9"}, "model"),
        ({"file": ("a.wav", b"x", "audio/wav")}, {"model": "whisper-1", "response_format": "srt"}, "response_format"),
    ],
)
def test_bad_requests_name_the_param(stt: TestClient, files: dict[str, object], data: dict[str, str], param: str) -> None:
    response = stt.post(URL, headers=KEY, files=files or {"other": ("x", b"x")}, data=data)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_unknown_audio_is_a_clear_error_or_the_configured_transcript(stt: TestClient) -> None:
    noise = b"ID3\x03\x00 not our audio"
    refused = _post(stt, noise)
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert "could not be decoded" in refused.json()["error"]["message"]  # type: ignore[attr-defined]
    stt.post("/_sim/transcripts", json={"sha256": hashlib.sha256(noise).hexdigest(), "text": "по хешу"})
    assert _post(stt, noise).json() == {"text": "по хешу"}  # type: ignore[attr-defined]
    stt.post("/_sim/transcripts", json={"text": "любой другой"})
    assert _post(stt, b"other").json() == {"text": "любой другой"}  # type: ignore[attr-defined]


def test_faults_and_journal(stt: TestClient) -> None:
    stt.post("/_sim/faults", json={"route": "POST /v1/*", "status": 429, "times": 1})
    limited = _post(stt, wav_bytes("x"))
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "requests"  # type: ignore[attr-defined]
    assert _post(stt, wav_bytes("x")).status_code == 200  # type: ignore[attr-defined]
    entries = stt.get("/_sim/journal").json()["requests"]
    assert [e["status"] for e in entries] == [429, 200]
    assert entries[0]["headers"]["authorization"].startswith("Bearer ***")


def test_not_multipart_is_400(stt: TestClient) -> None:
    assert stt.post(URL, headers=KEY, json={"file": "x"}).status_code == 400
