"""Images to send, fetched by URL: only from ``IMAGE_URL_ALLOWED_HOSTS`` (the gateway must not become a way to
reach other hosts from inside the network), at most ``IMAGE_URL_MAX_BYTES``, no redirects followed, through
the gateway's HTTP client (:mod:`avito_gateway.http`)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from avito_gateway.errors import (
    ImageHostNotAllowedError,
    ImageSourceRefusedError,
    ImageSourceUnreachableError,
    ImageTooLargeError,
    InvalidRequestError,
)
from avito_gateway.http import BodyTooLarge, HttpFailure, http_client
from avito_gateway.settings import GatewaySettings

__all__ = ["ImageFetcher"]


class ImageFetcher:
    def __init__(self, settings: GatewaySettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.http = http_client(timeout=settings.connection_timeout, max_connections=4, transport=transport)

    async def close(self) -> None:
        await self.http.aclose()

    def _checked(self, url: str) -> tuple[str, str]:
        """The URL's host and file name, or the error saying why it may not be fetched."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise InvalidRequestError("image_url is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise InvalidRequestError("image_url must be an absolute http(s) URL")
        if host not in self.settings.image_url_allowed_hosts:
            raise ImageHostNotAllowedError(f"image_url host {host!r} is not allowed (IMAGE_URL_ALLOWED_HOSTS)")
        return host, parts.path.rsplit("/", 1)[-1] or "image"

    async def fetch(self, url: str) -> tuple[bytes, str, str]:
        """The image's bytes, file name and content type."""
        _, name = self._checked(url)
        limit = self.settings.image_url_max_bytes
        try:
            answer = await self.http.request("GET", url, max_bytes=limit)
        except BodyTooLarge:
            raise ImageTooLargeError(f"image is larger than {limit} bytes") from None
        except HttpFailure as exc:
            raise ImageSourceUnreachableError(f"image_url could not be fetched: {exc.name}") from None
        if answer.status_code != 200:
            raise ImageSourceRefusedError(f"image_url answered {answer.status_code}")
        return answer.content, name, answer.headers.get("content-type", "application/octet-stream")
