"""Bytes of an image URL: http(s) only, timeouts, a size limit enforced while streaming."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from urllib3.exceptions import NameResolutionError

from .errors import ImageFetchError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # a scheme of two letters or more: "C:\\x" is a path
_ACCEPTED_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 64 * 1024 * 1024
    total_timeout: float = 120.0  # a server dripping bytes slower than the read timeout is cut off too


def is_url(text: str) -> bool:
    """Whether ``text`` names a URL (``scheme://host...``) rather than a local path; only http(s) URLs are
    fetched, any other scheme is refused by :func:`fetch_bytes` with a message that says so."""
    return _URL.match(text) is not None


def fetch_bytes(url: str, settings: FetchSettings) -> bytes:
    """The body of ``url``, or ImageFetchError naming the URL and why not."""
    scheme = urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageFetchError(f"{url}: only http and https URLs are fetched, not {scheme!r}")
    try:
        with requests.get(url, stream=True, timeout=(settings.connect_timeout, settings.read_timeout)) as response:
            if not 200 <= response.status_code < 300:
                raise ImageFetchError(f"{url}: HTTP {response.status_code} {response.reason}")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type and not content_type.startswith(_ACCEPTED_TYPES):
                raise ImageFetchError(f"{url}: the server sent {content_type!r}, not an image")
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > settings.max_bytes:
                raise ImageFetchError(f"{url}: {announced} bytes exceed the limit of {settings.max_bytes}")
            body = bytearray()
            deadline = time.monotonic() + settings.total_timeout
            while block := response.raw.read1(1 << 16):  # what has arrived, so the deadline is checked often
                if time.monotonic() > deadline:
                    raise ImageFetchError(f"{url}: timed out ({settings.total_timeout:g} s for the whole body)")
                body += block
                if len(body) > settings.max_bytes:
                    raise ImageFetchError(f"{url}: the body exceeds the limit of {settings.max_bytes} bytes")
            return bytes(body)
    except requests.Timeout as exc:
        raise ImageFetchError(f"{url}: timed out ({settings.read_timeout:g} s read timeout)") from exc
    except requests.ConnectionError as exc:
        raise ImageFetchError(f"{url}: {connection_problem(url, exc)}") from exc
    except requests.RequestException as exc:
        raise ImageFetchError(f"{url}: {exc}") from exc


def connection_problem(url: str, error: requests.ConnectionError) -> str:
    """Why a connection to ``url`` failed, in a few words, instead of urllib3's nested repr."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(reason, NameResolutionError):
        return f"the host {urlparse(url).hostname} cannot be resolved"
    cause = reason.__cause__ if reason is not None else None
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect: {cause.strerror.lower()}"
    return f"cannot connect: {' '.join(str(reason or error).split())}"
