"""Bytes of an image URL: http(s) only, timeouts, a size limit enforced while streaming."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from urllib3.exceptions import (
    HTTPError,
    NameResolutionError,
    ProtocolError,
    ReadTimeoutError,
)

from .errors import ImageFetchError
from .fetch_deadline import Deadline, deadline_session

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # a scheme of two letters or more: "C:\\x" is a path
_ACCEPTED_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
_COMPRESSED = ("gzip", "x-gzip", "deflate")  # Content-Encodings that are decoded (zlib, bounded)
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 64 * 1024 * 1024  # sent and decoded (after Content-Encoding) alike
    total_timeout: float = 120.0  # the whole exchange: connection, headers and body, however slow the server


def is_url(text: str) -> bool:
    """Whether ``text`` names a URL (``scheme://host...``) rather than a local path; only http(s) URLs are
    fetched, any other scheme is refused by :func:`fetch_bytes` with a message that says so."""
    return _URL.match(text) is not None


def fetch_bytes(url: str, settings: FetchSettings) -> bytes:
    """The body of ``url`` (decoded where the server gzip- or deflate-compressed it), or
    ImageFetchError naming the URL and why not, in one line: refused scheme, HTTP error, non-image
    type, more than ``max_bytes``, a timeout (``total_timeout`` covers the headers too), a
    connection that broke off."""
    scheme = urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageFetchError(f"{url}: only http and https URLs are fetched, not {scheme!r}")
    deadline = Deadline(settings.total_timeout)
    try:
        with deadline, deadline_session() as session, \
                session.get(url, stream=True, timeout=(settings.connect_timeout, settings.read_timeout),
                            headers={"Accept-Encoding": ACCEPT_ENCODING}) as response:
            body = _body(url, response, settings, deadline)
    except ImageFetchError:
        if deadline.expired:
            raise _timed_out(url, settings) from None
        raise
    except (requests.RequestException, HTTPError, OSError) as exc:
        if deadline.expired:
            raise _timed_out(url, settings) from exc
        raise ImageFetchError(f"{url}: {_problem(url, exc, settings)}") from exc
    if deadline.expired:  # the sockets were shut while the body was read: it may be short
        raise _timed_out(url, settings)
    return body


def _body(url: str, response: requests.Response, settings: FetchSettings, deadline: Deadline) -> bytes:
    if not 200 <= response.status_code < 300:
        raise ImageFetchError(f"{url}: HTTP {response.status_code} {response.reason}")
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type and not content_type.startswith(_ACCEPTED_TYPES):
        raise ImageFetchError(f"{url}: the server sent {content_type!r}, not an image")
    announced = int(response.headers.get("Content-Length") or 0)
    if announced > settings.max_bytes:
        raise ImageFetchError(f"{url}: {announced} bytes exceed the limit of {settings.max_bytes}")
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", *_COMPRESSED):
        raise ImageFetchError(f"{url}: the server sent Content-Encoding {encoding!r} ({ACCEPT_ENCODING} and "
                              "identity are decoded)")
    body = _BoundedBody(url, settings.max_bytes, compressed=encoding in _COMPRESSED)
    while block := response.raw.read1(1 << 16, decode_content=False):  # what has arrived
        if deadline.expired:  # also where its sockets are not watched (a SOCKS proxy's)
            raise _timed_out(url, settings)
        body.add(block)
    return body.end()


class _BoundedBody:
    """The body's bytes, decompressed as they come where the server compressed them, refused as soon
    as either the bytes sent or the bytes they decode to exceed ``max_bytes``."""

    def __init__(self, url: str, max_bytes: int, compressed: bool) -> None:
        self.url, self.max_bytes, self.sent = url, max_bytes, 0
        self.data = bytearray()
        self.decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32) if compressed else None  # gzip or zlib header

    def add(self, block: bytes) -> None:
        self.sent += len(block)
        if self.sent > self.max_bytes:
            raise ImageFetchError(f"{self.url}: the body exceeds the limit of {self.max_bytes} bytes")
        if self.decompressor is None:
            self.data += block
            return
        try:
            while block:
                self.data += self.decompressor.decompress(block, self.max_bytes + 1 - len(self.data))
                if len(self.data) > self.max_bytes:
                    raise ImageFetchError(f"{self.url}: the body decompresses to more than the limit of "
                                          f"{self.max_bytes} bytes")
                block = self.decompressor.unconsumed_tail
        except zlib.error as exc:
            raise ImageFetchError(f"{self.url}: the compressed body is corrupt ({exc})") from exc

    def end(self) -> bytes:
        if self.decompressor is not None and not self.decompressor.eof:
            raise ImageFetchError(f"{self.url}: the compressed body is truncated")
        return bytes(self.data)


def _timed_out(url: str, settings: FetchSettings) -> ImageFetchError:
    return ImageFetchError(f"{url}: timed out ({settings.total_timeout:g} s for the whole response, headers "
                           "included)")


def _problem(url: str, error: Exception, settings: FetchSettings) -> str:
    """Why the exchange with ``url`` failed, in a few words on one line."""
    if isinstance(error, (requests.Timeout, ReadTimeoutError)):
        return f"timed out ({settings.read_timeout:g} s read timeout)"
    if isinstance(error, requests.ConnectionError):
        return connection_problem(url, error)
    if isinstance(error, (ProtocolError, requests.exceptions.ChunkedEncodingError)):
        return f"the connection broke off ({_first_line(error)})"
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    """An exception's message without the nested reprs of urllib3's wrapped errors."""
    while error.args and isinstance(error.args[0], BaseException):  # requests wraps urllib3's error
        error = error.args[0]
    text = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    return " ".join(text.split()) or type(error).__name__


def connection_problem(url: str, error: requests.ConnectionError) -> str:
    """Why a connection to ``url`` failed, in a few words, instead of urllib3's nested repr."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(reason, NameResolutionError):
        return f"the host {urlparse(url).hostname} cannot be resolved"
    cause = reason.__cause__ if reason is not None else None
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect: {cause.strerror.lower()}"
    return f"cannot connect: {' '.join(str(reason or error).split())}"
