"""Values that came from outside, made safe for one log line (no forged lines, no terminal escapes)."""

from __future__ import annotations

import logging
import re

__all__ = ["safe", "install_access_log_redaction"]

_MAX = 300


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def safe(value: object, limit: int = _MAX) -> str:
    """``value`` as text, each non-printable character escaped (a newline becomes ``\\x0a``), cut at ``limit``.

    Cyrillic and other printable text stays as it is."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


class _RedactWebhookSecret(logging.Filter):
    """uvicorn's access log prints the request path: ``/webhook/avito/<secret>`` becomes ``/webhook/avito/***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "/webhook/avito/" in a for a in args):
            record.args = tuple(_SECRET_SEGMENT.sub(r"\1***", a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str) and "/webhook/avito/" in record.msg:
            record.msg = _SECRET_SEGMENT.sub(r"\1***", record.msg)
        return True


_SECRET_SEGMENT = re.compile(r"(/webhook/avito/)[^\s?/\"]+")


def install_access_log_redaction() -> None:
    """Once per process, on uvicorn's access and error loggers (the secret path must never be logged)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactWebhookSecret) for f in logger.filters):
            logger.addFilter(_RedactWebhookSecret())
