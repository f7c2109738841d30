"""One URL to one local file over HTTP(S): timeouts, retries with backoff, a progress bar, verification.

The body is streamed into a temporary file beside the destination, verified, then renamed into
place atomically; a failure names the URL and why (:class:`DownloadFailed`).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import requests
from tqdm.auto import tqdm
from urllib3.exceptions import NameResolutionError, ReadTimeoutError

from ..errors import WeightsVerificationError
from ..settings import DownloadSettings
from .loading import not_a_checkpoint
from .manifest import WeightsEntry
from .records import remember
from .verify import verify_file

_CHUNK = 1 << 20
_CONNECTION_PREFIX = re.compile(r"^\w+\(host='[^']*', port=\d+\): ")


class DownloadFailed(Exception):
    """One URL did not give a verified file; the message says why."""

    def __init__(self, message: str, verification: bool = False, unresolved_host: str | None = None):
        super().__init__(message)
        self.url = ""
        self.verification = verification
        self.unresolved_host = unresolved_host


class _Retryable(Exception):
    """A failure worth retrying the same URL for (connection error, 5xx, truncated body)."""


def download(url: str, destination: Path, entry: WeightsEntry, settings: DownloadSettings,
             progress: bool) -> None:
    """``url`` verified against ``entry`` and renamed to ``destination``; DownloadFailed names why not."""
    try:
        _download_once(url, destination, entry, settings, progress)
    except DownloadFailed as exc:
        exc.url = url
        raise


def _download_once(url: str, destination: Path, entry: WeightsEntry, settings: DownloadSettings,
                   progress: bool) -> None:
    if not url.startswith(("http://", "https://")):
        raise DownloadFailed("not an http(s) URL")
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.",
                                         suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as sink:
            for attempt in range(settings.retries + 1):
                try:
                    sink.seek(0)
                    sink.truncate()
                    _stream(url, sink, entry, settings, progress)
                    break
                except _Retryable as exc:
                    if attempt == settings.retries:
                        raise DownloadFailed(f"{exc}, {attempt + 1} tries") from exc
                    time.sleep(settings.backoff * 2**attempt)
        if entry.sha256 is None:  # an error or login page served with status 200 is never recorded as the file
            with open(temporary, "rb") as downloaded:
                reason = not_a_checkpoint(downloaded.read(64))
            if reason is not None:
                raise DownloadFailed(f"not a checkpoint: {reason}")
        try:
            digest = verify_file(Path(temporary), entry, url, record=False)
        except WeightsVerificationError as exc:
            raise DownloadFailed(str(exc), verification=True) from exc
        os.replace(temporary, destination)
        remember(entry.file_name, destination, digest, destination.stat())
    finally:
        Path(temporary).unlink(missing_ok=True)


def _stream(url: str, sink, entry: WeightsEntry, settings: DownloadSettings, progress: bool) -> None:
    timeout = (settings.connect_timeout, settings.read_timeout)
    try:
        with requests.get(url, stream=True, timeout=timeout, allow_redirects=True) as response:
            if response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DownloadFailed(f"HTTP {response.status_code}")
            expected = int(response.headers.get("Content-Length") or 0) or entry.size
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file_name,
                      disable=not progress, leave=False) as bar:
                for block in response.iter_content(_CHUNK):
                    sink.write(block)
                    bar.update(len(block))
    except requests.Timeout as exc:
        raise DownloadFailed(f"timed out after {settings.read_timeout:g} s") from exc
    except requests.ConnectionError as exc:
        reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else exc
        if isinstance(exc.args[0] if exc.args else None, ReadTimeoutError):
            raise DownloadFailed(f"stalled for {settings.read_timeout:g} s") from exc
        if isinstance(reason, NameResolutionError):
            host = urlparse(url).hostname or ""
            raise DownloadFailed(f"the host {host} cannot be resolved", unresolved_host=host) from exc
        raise _Retryable(f"connection error: {_CONNECTION_PREFIX.sub('', str(reason))}") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise _Retryable(f"truncated body: {exc}") from exc
    except requests.RequestException as exc:
        raise DownloadFailed(str(exc)) from exc
