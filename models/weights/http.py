"""One URL to one local file over HTTP(S): timeouts, retries with backoff, a progress bar, verification.

The body is streamed into a new temporary file beside the destination (:mod:`models.files`),
verified, then renamed into place atomically; a failure names the URL and why
(:class:`DownloadFailed`). A download stops as soon as it has more bytes than the manifest pins,
or than ``CONVNETS_HUB_MAX_DOWNLOAD_BYTES`` (8 GiB) where no size is pinned, and as soon as the
first bytes of a file that no sha256 pins show that it is not a checkpoint (an error page).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import requests
from tqdm.auto import tqdm
from urllib3.exceptions import NameResolutionError, ReadTimeoutError

from ..errors import WeightsVerificationError
from ..files import NewFile
from ..settings import DownloadSettings
from .loading import not_a_checkpoint
from .manifest import WeightsEntry
from .records import remember
from .verify import verify_file

_CHUNK = 1 << 20
_HEAD = 64  # bytes enough to tell a checkpoint from an error page
_CONNECTION_PREFIX = re.compile(r"^\w+\(host='[^']*', port=\d+\): ")


class DownloadFailed(Exception):
    """One URL did not give a verified file; the message says why."""

    def __init__(self, message: str, verification: bool = False, unresolved_host: str | None = None):
        super().__init__(message)
        self.url = ""
        self.verification = verification
        self.unresolved_host = unresolved_host


class _Limit:
    """The most bytes a download of ``entry`` may have: its pinned size, else ``max_download_bytes``."""

    def __init__(self, entry: WeightsEntry, settings: DownloadSettings) -> None:
        self.pinned = entry.size is not None
        self.bytes = entry.size if entry.size is not None else settings.max_download_bytes

    def check(self, size: int, what: str) -> None:
        if size > self.bytes:
            bound = (f"the {self.bytes} bytes the manifest pins" if self.pinned else
                     f"CONVNETS_HUB_MAX_DOWNLOAD_BYTES ({self.bytes}), the most taken for a file whose size "
                     "nothing pins")
            raise DownloadFailed(f"{what} {size} bytes or more, more than {bound}; stopped there",
                                 verification=self.pinned)


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
    with NewFile(destination) as new:
        sink = new.file
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
        sink.flush()
        if entry.sha256 is None:  # an error or login page served with status 200 is never recorded as the file
            with open(new.path, "rb") as downloaded:
                reason = not_a_checkpoint(downloaded.read(_HEAD))
            if reason is not None:
                raise DownloadFailed(f"not a checkpoint: {reason}")
        try:
            digest = verify_file(new.path, entry, url, record=False)
        except WeightsVerificationError as exc:
            raise DownloadFailed(str(exc), verification=True) from exc
        new.publish()
    remember(entry.file_name, destination, digest, destination.stat())


def _stream(url: str, sink, entry: WeightsEntry, settings: DownloadSettings, progress: bool) -> None:
    timeout = (settings.connect_timeout, settings.read_timeout)
    try:
        with requests.get(url, stream=True, timeout=timeout, allow_redirects=True) as response:
            if response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DownloadFailed(f"HTTP {response.status_code}")
            announced = int(response.headers.get("Content-Length") or 0)
            limit = _Limit(entry, settings)
            limit.check(announced, "the server announces")
            head = b"" if entry.sha256 is None else None  # an unpinned file's first bytes, until judged
            with tqdm(total=announced or entry.size, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=entry.file_name, disable=not progress, leave=False) as bar:
                for block in response.iter_content(_CHUNK):
                    limit.check(sink.tell() + len(block), "the server sent")
                    if head is not None and len(head) < _HEAD:  # an error page stops here, not at its end
                        head += block[:_HEAD - len(head)]
                        reason = not_a_checkpoint(head) if len(head) >= _HEAD else None
                        if reason is not None:
                            raise DownloadFailed(f"not a checkpoint: {reason}")
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
