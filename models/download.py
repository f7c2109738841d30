"""Resolve a manifest entry to a verified local file: cache, then mirror, then upstream URLs.

Downloads are streamed into a temporary file inside the cache directory, then hashed and
verified against the manifest (sha256 when pinned, else the file name's hash prefix, and the
size when known) and renamed atomically into place. Every file verified is also checked against,
or recorded in, its first-use record (:mod:`.file_records`), which spares re-hashing unchanged
files. An inter-process file lock makes several processes that need the same file download it once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import requests
import torch
from filelock import FileLock, Timeout
from tqdm.auto import tqdm
from urllib3.exceptions import NameResolutionError, ReadTimeoutError

from .checkpoint import not_a_checkpoint
from .errors import WeightsError, WeightsUnavailableError, WeightsVerificationError
from .file_records import checkpoint_dir, read_record, record_path, remember
from .manifest import WeightsEntry

OFFLINE_ENV = "CONVNETS_HUB_OFFLINE"
MIRROR_ENV = "CONVNETS_HUB_MIRROR"
_CHUNK = 1 << 20
_CONNECTION_PREFIX = re.compile(r"^\w+\(host='[^']*', port=\d+\): ")


class UnverifiedWeightsWarning(UserWarning):
    """A weights file was loaded that no sha256 in the manifest pins."""


@dataclass(frozen=True)
class DownloadSettings:
    """Network settings; each can be set through the environment variable named beside it."""

    connect_timeout: float = 10.0  # CONVNETS_HUB_CONNECT_TIMEOUT
    read_timeout: float = 60.0  # CONVNETS_HUB_READ_TIMEOUT
    retries: int = 3  # CONVNETS_HUB_RETRIES: further tries of one URL on connection errors and 5xx
    backoff: float = 1.0  # CONVNETS_HUB_BACKOFF: seconds before the first retry, doubled each time
    lock_timeout: float = 3600.0  # CONVNETS_HUB_LOCK_TIMEOUT: wait for another process's download

    @classmethod
    def from_env(cls) -> DownloadSettings:
        names = {"connect_timeout": float, "read_timeout": float, "retries": int, "backoff": float,
                 "lock_timeout": float}
        values = {}
        for name, kind in names.items():
            raw = os.environ.get(f"CONVNETS_HUB_{name.upper()}")
            if raw:
                values[name] = kind(raw)
        return cls(**values)


def is_offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, entry: WeightsEntry, origin: str, record: bool = True) -> str:
    """The sha256 of ``path``, which must have the size and hash the entry pins and, unless a sha256
    is pinned, the sha256 of its first-use record; raises WeightsVerificationError otherwise.

    With ``record``, the file is recorded (its first-use record is created, or it is added as a copy)
    and an unchanged recorded copy is not hashed again. The first use of a file that no sha256
    pins gives one UnverifiedWeightsWarning line with its sha256.
    """
    stat = path.stat()
    if entry.size is not None and stat.st_size != entry.size:
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has {stat.st_size} bytes, the manifest expects {entry.size}")
    first_use = read_record(entry.file_name)
    known = first_use.known_sha256(path) if first_use else None
    actual = known or sha256_of(path)
    if entry.sha256 is not None and actual != entry.sha256.lower():
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has sha256 {actual}, the manifest pins {entry.sha256}")
    if entry.hash_prefix is not None and not actual.startswith(entry.hash_prefix.lower()):
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has sha256 {actual}, which does not start with the "
            f"hash prefix {entry.hash_prefix} of its file name")
    if entry.sha256 is None and first_use is not None and actual != first_use.sha256:
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has sha256 {actual}, but when it was first used "
            f"({first_use.first_seen}) it had sha256 {first_use.sha256}; if the publisher changed the file "
            f"on purpose, delete {record_path(entry.file_name)} (or pin the new sha256 in the manifest)")
    if record and known is None:
        remember(entry.file_name, path, actual, stat)
    if entry.sha256 is None and first_use is None:
        checked = f"hash prefix {entry.hash_prefix} checked" if entry.hash_prefix else "no hash checked"
        warnings.warn(f"{entry.file_name} is not pinned by a sha256 in the manifest ({checked}); "
                      f"its sha256 is {actual}, recorded for first-use checks of later loads",
                      UnverifiedWeightsWarning, stacklevel=2)
    return actual


def verification_of(entry: WeightsEntry) -> str:
    """How a load of ``entry`` is verified now: "sha256 pinned", "hash prefix" (and its first-use
    record), "first-use record" or "none" (an unpinned file seen for the first time)."""
    if entry.sha256 is not None:
        return "sha256 pinned"
    if entry.hash_prefix is not None:
        return "hash prefix"
    return "first-use record" if read_record(entry.file_name) is not None else "none"


def resolve_weights_file(entry: WeightsEntry, progress: bool = True) -> Path:
    """The verified local file of ``entry``: from the cache, the mirror or the upstream URLs."""
    settings = DownloadSettings.from_env()
    destination = checkpoint_dir() / entry.file_name
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    urls = list(entry.urls)
    failures = []
    if mirror.startswith(("http://", "https://")):
        urls.insert(0, f"{mirror.rstrip('/')}/{quote(entry.file_name)}")
    elif mirror:
        mirror_dir = Path(mirror.removeprefix("file://")).expanduser()
        if (mirror_dir / entry.file_name).is_file():
            verify_file(mirror_dir / entry.file_name, entry, str(mirror_dir / entry.file_name))
            return mirror_dir / entry.file_name
        failures.append(f"{mirror_dir / entry.file_name} ({_mirror_state(mirror_dir)})")
    if _verified_cached(destination, entry, remove_failed=is_offline()):
        return destination  # files are renamed into place whole: reading needs no lock
    if is_offline():
        looked = f" (looked in the mirror: {failures[0]})" if failures else ""
        raise WeightsUnavailableError(
            f"{entry.file_name} is not in the cache{looked} and {OFFLINE_ENV}=1 forbids downloading it from "
            f"{', '.join(urls)}. Put the file at {destination} (or in a directory named by {MIRROR_ENV}).")
    destination.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(destination) + ".lock", timeout=settings.lock_timeout)
    try:
        with lock:
            try:
                if _verified_cached(destination, entry):
                    return destination
                for url in urls:
                    try:
                        _download(url, destination, entry, settings, progress)
                        return destination
                    except _DownloadFailed as exc:
                        failures.append(exc)
            finally:
                # Unlinked while held: a process already waiting on it finds the file in place, or tries
                # itself; the atomic rename keeps any two downloads from mixing.
                Path(lock.lock_file).unlink(missing_ok=True)
    except Timeout as exc:
        raise WeightsUnavailableError(
            f"another process held the download lock {exc.lock_file} of {entry.file_name} for more "
            f"than {settings.lock_timeout:g} s; remove the lock file if no download is running") from exc
    raise _failure(entry, failures, destination)


def _mirror_state(mirror_dir: Path) -> str:
    if mirror_dir.is_dir():
        return f"not in the mirror directory {mirror_dir}, which exists"
    return f"the mirror directory {mirror_dir} does not exist"


def _failure(entry: WeightsEntry, failures: list, destination: Path) -> WeightsError:
    """The error after every source failed: each source and why, then what the user can do."""
    download_failures = [f for f in failures if isinstance(f, _DownloadFailed)]
    verification = any(f.verification for f in download_failures)
    unresolved = sorted({f.unresolved_host for f in download_failures if f.unresolved_host})
    tried = "; ".join(f"{f.url} ({f})" if isinstance(f, _DownloadFailed) else f for f in failures)
    advice = (f"Download it by hand and put it at {destination} (or in a directory named by {MIRROR_ENV}).")
    if unresolved:
        advice = (f"The host name {', '.join(unresolved)} cannot be resolved: is this machine offline? Set "
                  f"{OFFLINE_ENV}=1 and put the file at {destination}, or set {MIRROR_ENV} to a directory or "
                  "URL that holds it.")
    error = WeightsVerificationError if verification else WeightsUnavailableError
    return error(f"could not get a verified {entry.file_name}; tried: {tried}. {advice}")


def download_url(url: str, progress: bool = True) -> Path:
    """A user-given checkpoint URL, downloaded into the cache under its own file name."""
    name = Path(urlparse(url).path).name or "checkpoint.pth"
    entry = WeightsEntry(id=url, entrypoint="", urls=(url,), file_name=name, layout="auto",
                         preprocessing={}, license="unknown", hash_prefix=_hash_prefix_of(name))
    return resolve_weights_file(entry, progress)


def _hash_prefix_of(file_name: str) -> str | None:
    """torch.hub's convention: ``name-<sha256 prefix>.ext`` (at least 8 hex digits)."""
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match and len(match.group(1)) >= 8 else None


def _verified_cached(path: Path, entry: WeightsEntry, remove_failed: bool = True) -> bool:
    """Whether the cached file exists and verifies; a cached file that fails is removed (with a
    warning) if ``remove_failed``, which only the holder of the download lock may ask for."""
    if not path.is_file():
        return False
    try:
        verify_file(path, entry, f"the cache ({path})")
    except WeightsVerificationError as exc:
        if remove_failed:
            warnings.warn(f"removing a cached file that fails verification: {exc}", stacklevel=3)
            path.unlink(missing_ok=True)
        return False
    return True


class _DownloadFailed(Exception):
    """One URL did not give a verified file; the message says why."""

    def __init__(self, message: str, verification: bool = False, unresolved_host: str | None = None):
        super().__init__(message)
        self.url = ""
        self.verification = verification
        self.unresolved_host = unresolved_host


class _Retryable(Exception):
    """A failure worth retrying the same URL for (connection error, 5xx, truncated body)."""


def _download(url: str, destination: Path, entry: WeightsEntry, settings: DownloadSettings,
              progress: bool) -> None:
    try:
        _download_once(url, destination, entry, settings, progress)
    except _DownloadFailed as exc:
        exc.url = url
        raise


def _download_once(url: str, destination: Path, entry: WeightsEntry, settings: DownloadSettings,
                   progress: bool) -> None:
    if not url.startswith(("http://", "https://")):
        raise _DownloadFailed("not an http(s) URL")
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
                        raise _DownloadFailed(f"{exc}, {attempt + 1} tries") from exc
                    time.sleep(settings.backoff * 2**attempt)
        if entry.sha256 is None:  # an error or login page served with status 200 is never recorded as the file
            with open(temporary, "rb") as downloaded:
                reason = not_a_checkpoint(downloaded.read(64))
            if reason is not None:
                raise _DownloadFailed(f"not a checkpoint: {reason}")
        try:
            digest = verify_file(Path(temporary), entry, url, record=False)
        except WeightsVerificationError as exc:
            raise _DownloadFailed(str(exc), verification=True) from exc
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
                raise _DownloadFailed(f"HTTP {response.status_code}")
            expected = int(response.headers.get("Content-Length") or 0) or entry.size
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file_name,
                      disable=not progress, leave=False) as bar:
                for block in response.iter_content(_CHUNK):
                    sink.write(block)
                    bar.update(len(block))
    except requests.Timeout as exc:
        raise _DownloadFailed(f"timed out after {settings.read_timeout:g} s") from exc
    except requests.ConnectionError as exc:
        reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else exc
        if isinstance(exc.args[0] if exc.args else None, ReadTimeoutError):
            raise _DownloadFailed(f"stalled for {settings.read_timeout:g} s") from exc
        if isinstance(reason, NameResolutionError):
            host = urlparse(url).hostname or ""
            raise _DownloadFailed(f"the host {host} cannot be resolved", unresolved_host=host) from exc
        raise _Retryable(f"connection error: {_CONNECTION_PREFIX.sub('', str(reason))}") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise _Retryable(f"truncated body: {exc}") from exc
    except requests.RequestException as exc:
        raise _DownloadFailed(str(exc)) from exc
