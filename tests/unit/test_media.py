"""Images and voice: upload limits, real image bytes, voice links that expire, words in the audio."""

from __future__ import annotations

from typing import Any

import pytest

from avito_harness.fakes.audio import read_wav_transcript, wav_bytes
from avito_harness.fakes.avito.media import image_dimensions, png_bytes, sniff_image_type
from tests.unit.conftest import USER, first_chat, messages_of, say

V1 = f"/messenger/v1/accounts/{USER}"
PNG = png_bytes("upload", 64, 48)


def _upload(api: Any, auth: dict[str, str], data: bytes, name: str = "uploadfile[]") -> Any:
    return api.post(f"{V1}/uploadImages", files={name: ("photo.png", data, "image/png")}, headers=auth)


def test_upload_then_send_image(api: Any, auth: dict[str, str]) -> None:
    uploaded = _upload(api, auth, PNG)
    assert uploaded.status_code == 200
    ((image_id, sizes),) = uploaded.json().items()
    assert "1280x960" in sizes
    chat = first_chat(api, auth)
    sent = api.post(f"{V1}/chats/{chat['id']}/messages/image", json={"image_id": image_id}, headers=auth)
    assert sent.status_code == 200
    body = sent.json()
    assert body["author_id"] == USER and body["type"] == "image"
    assert body["content"]["image"]["sizes"] == sizes
    assert messages_of(api, auth, chat["id"])[0]["type"] == "image"


def test_image_urls_serve_real_png_of_the_named_size(api: Any, auth: dict[str, str]) -> None:
    ((_, sizes),) = _upload(api, auth, PNG).json().items()
    for size, url in sizes.items():
        data = api.get(url).content
        assert sniff_image_type(data) == "png"
        assert image_dimensions(data) == tuple(int(v) for v in size.split("x"))


def test_sending_an_image_id_that_was_never_uploaded_is_refused(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    response = api.post(f"{V1}/chats/{chat['id']}/messages/image", json={"image_id": "1.nope"}, headers=auth)
    assert response.status_code == 400
    assert "uploadImages" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("data", "name", "problem"),
    [
        (b"plain text, not a picture", "uploadfile[]", "not an image"),
        (PNG, "file", "exactly one file"),
        (png_bytes("huge", 1, 1)[:16] + (10000).to_bytes(4, "big") + (8000).to_bytes(4, "big") + b"\0" * 40,
         "uploadfile[]", "75 megapixels"),
    ],
)
def test_bad_uploads_name_the_problem(api: Any, auth: dict[str, str], data: bytes, name: str, problem: str) -> None:
    response = _upload(api, auth, data, name)
    assert response.status_code == 400
    assert problem in response.json()["error"]["fields"]["uploadfile[]"]


def test_upload_over_24_mb_is_refused(api: Any, auth: dict[str, str]) -> None:
    big = PNG + b"\0" * (24 * 1024 * 1024)
    response = _upload(api, auth, big)
    assert response.status_code == 400
    assert "24 MB" in response.json()["error"]["fields"]["uploadfile[]"]


def test_upload_that_is_not_multipart_is_refused(api: Any, auth: dict[str, str]) -> None:
    response = api.post(f"{V1}/uploadImages", content=PNG, headers={**auth, "Content-Type": "image/png"})
    assert response.status_code == 400


def test_voice_message_links_serve_audio_that_carries_the_words(api: Any, auth: dict[str, str], clock: Any) -> None:
    chat = first_chat(api, auth)
    voice_id = say(api, chat["id"], "Нужен аккумулятор на шестьдесят ампер", type="voice")["message"]["content"]["voice"]["voice_id"]
    links = api.get(f"{V1}/getVoiceFiles", params={"voice_ids": voice_id}, headers=auth)
    assert links.status_code == 200
    url = links.json()["voices_urls"][voice_id]
    audio = api.get(url)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert read_wav_transcript(audio.content) == "Нужен аккумулятор на шестьдесят ампер"
    clock.advance(3600)
    expired = api.get(url)
    assert expired.status_code == 403
    fresh = api.get(f"{V1}/getVoiceFiles", params={"voice_ids": voice_id}, headers=auth).json()["voices_urls"][voice_id]
    assert fresh != url and api.get(fresh).status_code == 200


def test_voice_ids_as_comma_list_or_repeated(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    ids = [say(api, chat["id"], f"слово {n}", type="voice")["message"]["content"]["voice"]["voice_id"] for n in range(2)]
    comma = api.get(f"{V1}/getVoiceFiles", params={"voice_ids": ",".join(ids)}, headers=auth).json()
    repeated = api.get(f"{V1}/getVoiceFiles?voice_ids={ids[0]}&voice_ids={ids[1]}", headers=auth).json()
    assert set(comma["voices_urls"]) == set(repeated["voices_urls"]) == set(ids)


def test_voice_files_errors(api: Any, auth: dict[str, str]) -> None:
    assert api.get(f"{V1}/getVoiceFiles", headers=auth).status_code == 400
    assert api.get(f"{V1}/getVoiceFiles", params={"voice_ids": "nope"}, headers=auth).status_code == 404
    assert api.get("/media/voice/unknown.wav").status_code == 404


def test_wav_roundtrip_keeps_unicode_words() -> None:
    for text in ("да", "Привет, мир! 123", "ё" * 301):
        assert read_wav_transcript(wav_bytes(text)) == text
    assert read_wav_transcript(b"not audio") is None
