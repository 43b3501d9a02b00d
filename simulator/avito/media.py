"""Real media bytes for the simulator: PNG images and speaking WAV files.

Images are solid-colour PNGs of the exact size their URL names. Voice files
are real WAV audio (a short tone per word) whose RIFF ``LIST/INFO`` chunk
carries the words in ``ICMT``: the fake speech-to-text service recovers the
transcript from the file itself, so no side channel is needed.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
import zlib
from functools import lru_cache

__all__ = [
    "IMAGE_SIZES",
    "image_dimensions",
    "png_bytes",
    "read_wav_transcript",
    "sniff_image_type",
    "wav_bytes",
]

#: The sizes Avito lists for a message image, largest first.
IMAGE_SIZES = ("1280x960", "640x480", "140x105", "32x32")
SAMPLE_RATE = 8000
SECONDS_PER_WORD = 0.35


def _colour(key: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(key.encode()).digest()
    return digest[0], digest[1], digest[2]


@lru_cache(maxsize=64)
def png_bytes(key: str, width: int, height: int) -> bytes:
    """A solid-colour RGB PNG; the colour is derived from ``key``."""
    r, g, b = _colour(key)
    row = b"\x00" + bytes((r, g, b)) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def sniff_image_type(data: bytes) -> str | None:
    """The image format Avito accepts (JPEG, HEIC, GIF, BMP, PNG), from magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "heic"
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height read from the header (PNG, GIF, BMP, JPEG); None if unknown."""
    kind = sniff_image_type(data)
    try:
        if kind == "png":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if kind == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if kind == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(int(w)), abs(int(h))
        if kind == "jpeg":
            return _jpeg_dimensions(data)
    except struct.error:
        return None
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


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
