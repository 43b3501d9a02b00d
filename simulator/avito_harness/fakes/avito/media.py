"""Real image bytes for the fake Avito: solid-colour PNGs of the exact size their URL names."""

from __future__ import annotations

import hashlib
import struct
import zlib
from functools import lru_cache

__all__ = ["IMAGE_SIZES", "decodes", "image_dimensions", "png_bytes", "sniff_image_type"]

#: The sizes Avito lists for a message image, largest first.
IMAGE_SIZES = ("1280x960", "640x480", "140x105", "32x32")


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


def _png_decodes(data: bytes) -> bool:
    """Every chunk complete with a correct CRC, IHDR first, IEND last, and the pixel data inflates."""
    pos, idat, seen_ihdr = 8, [], False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            return False
        if not seen_ihdr and kind != b"IHDR":
            return False
        seen_ihdr = True
        if kind == b"IDAT":
            idat.append(body)
        if kind == b"IEND":
            try:
                return bool(idat) and len(zlib.decompress(b"".join(idat))) > 0
            except zlib.error:
                return False
        pos += 12 + length
    return False


def decodes(data: bytes) -> bool:
    """Whether the file is a whole image of its format (Avito refuses a truncated or corrupt upload)."""
    kind = sniff_image_type(data)
    if kind == "png":
        return _png_decodes(data)
    if kind == "heic":
        return len(data) > 32
    dims = image_dimensions(data)
    if dims is None or dims[0] <= 0 or dims[1] <= 0:
        return False
    if kind == "jpeg":
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if kind == "gif":
        return data.rstrip(b"\x00").endswith(b"\x3b")
    if kind == "bmp":
        declared = int(struct.unpack("<I", data[2:6])[0])
        return len(data) >= declared > 26
    return False


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
