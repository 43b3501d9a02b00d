"""Speaking WAV files: real audio whose words travel inside the file.

The fake Avito serves voice messages as WAV audio (a short tone per word)
whose RIFF ``LIST/INFO`` chunk carries the words in ``ICMT``; the fake
speech-to-text service recovers the transcript from the file itself, so no
side channel is needed.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave

__all__ = ["SECONDS_PER_WORD", "read_wav_transcript", "wav_bytes", "wav_duration"]

SAMPLE_RATE = 8000
SECONDS_PER_WORD = 0.35


def _info_chunk(text: str) -> bytes:
    def sub(kind: bytes, value: str) -> bytes:
        raw = value.encode("utf-8") + b"\x00"
        if len(raw) % 2:
            raw += b"\x00"
        return kind + struct.pack("<I", len(raw)) + raw

    body = b"INFO" + sub(b"INAM", "avito-harness voice message") + sub(b"ICMT", text)
    return b"LIST" + struct.pack("<I", len(body)) + body


def wav_bytes(text: str) -> bytes:
    """Mono 16-bit WAV: one short tone per word, transcript in ``LIST/INFO/ICMT``."""
    words = max(1, len(text.split()))
    frames = int(SAMPLE_RATE * SECONDS_PER_WORD * words)
    pitch = 220 + (int(hashlib.md5(text.encode()).hexdigest()[:2], 16) % 200)
    samples = bytearray()
    for n in range(frames):
        envelope = 0.5 if (n // int(SAMPLE_RATE * SECONDS_PER_WORD)) % 2 == 0 else 0.25
        samples += struct.pack("<h", int(32767 * envelope * math.sin(2 * math.pi * pitch * n / SAMPLE_RATE)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(bytes(samples))
    riff = buf.getvalue()
    info = _info_chunk(text)
    body = riff[8:] + info
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read_wav_transcript(data: bytes) -> str | None:
    """The words stored in a WAV's ``LIST/INFO/ICMT`` chunk, or None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    i = 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        (size,) = struct.unpack("<I", data[i + 4 : i + 8])
        if kind == b"LIST" and data[i + 8 : i + 12] == b"INFO":
            j, end = i + 12, i + 8 + size
            while j + 8 <= end:
                sub = data[j : j + 4]
                (sub_size,) = struct.unpack("<I", data[j + 4 : j + 8])
                if sub == b"ICMT":
                    return data[j + 8 : j + 8 + sub_size].rstrip(b"\x00").decode("utf-8")
                j += 8 + sub_size + (sub_size % 2)
        i += 8 + size + (size % 2)
    return None


def wav_duration(data: bytes) -> float:
    """Length in seconds of a WAV made by :func:`wav_bytes`."""
    with wave.open(io.BytesIO(data), "rb") as src:
        return src.getnframes() / src.getframerate()
