"""Where a manifest entry's file comes from: the cache, the mirror, then each upstream URL in order;
failing those, each of the entry's Hugging Face Hub sources (:func:`resolve_any_source`).

Several processes that need the same file download it once (an inter-process file lock); every
file returned has been verified (:mod:`.verify`). ``CONVNETS_HUB_OFFLINE=1`` never touches the
network and never deletes a cached file that fails verification: the error names it and why.
A checkpoint from a user-given URL is cached under a folder named by the URL's hash
(``checkpoints/by-url/<hash>/<file name>``), so two URLs with one file name never share a file.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from urllib.parse import quote, urlparse

import torch
from filelock import FileLock, Timeout

from ..errors import WeightsError, WeightsUnavailableError, WeightsVerificationError
from ..settings import MIRROR_ENV, OFFLINE_ENV, DownloadSettings, is_offline, mirror
from .http import DownloadFailed, download
from .manifest import WeightsEntry
from .records import checkpoint_dir
from .verify import verify_file

URL_CACHE_FOLDER = "by-url"


def resolve_weights_file(entry: WeightsEntry, progress: bool = True) -> Path:
    """The verified local file of ``entry``: from the cache, the mirror or the upstream URLs."""
    return _resolve(entry, progress, mirror())


def resolve_any_source(entry: WeightsEntry, progress: bool = True) -> tuple[Path, WeightsEntry]:
    """The verified local file of ``entry`` from its upstream file (:func:`resolve_weights_file`) or, if that
    fails, from each of its Hugging Face Hub sources in order; with the entry describing the file that came
    (its file name, hashes and key layout). When every source fails, the error names each and why."""
    try:
        return resolve_weights_file(entry, progress), entry
    except WeightsError as upstream:
        if not entry.hf_hub_sources:
            raise
        from .hf_hub import resolve_hub_source

        failures, kinds = [f"upstream: {upstream}"], {type(upstream)}
        for source in entry.hf_hub_sources:
            try:
                return resolve_hub_source(entry, source)
            except WeightsError as exc:
                failures.append(f"hf-hub:{source.hf_hub_id} ({source.file_name}): {exc}")
                kinds.add(type(exc))
        error = WeightsVerificationError if WeightsVerificationError in kinds else type(upstream)
        raise error(f"no source gave a verified file of {entry.id}: " + " | ".join(failures)) from upstream


def _resolve(entry: WeightsEntry, progress: bool, mirror: str) -> Path:
    settings = DownloadSettings.from_env()
    destination = checkpoint_dir() / entry.file_name
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
    if is_offline():
        return _offline_cached(destination, entry, urls, failures)
    if _verified_cached(destination, entry, remove_failed=False):
        return destination  # files are renamed into place whole: reading needs no lock
    destination.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(destination) + ".lock", timeout=settings.lock_timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise WeightsUnavailableError(
            f"another process held the download lock {exc.lock_file} of {entry.file_name} for more "
            f"than {settings.lock_timeout:g} s; remove the lock file if no download is running") from exc
    except OSError as exc:  # a link in its place (filelock never opens one), a folder, no permission
        raise WeightsUnavailableError(
            f"cannot take the download lock {lock.lock_file} of {entry.file_name}: {exc.strerror or exc} (a "
            "link or folder in its place? remove it)") from exc
    try:
        if _verified_cached(destination, entry):
            return destination
        for url in urls:
            try:
                download(url, destination, entry, settings, progress)
                return destination
            except DownloadFailed as exc:
                failures.append(exc)
    finally:
        # Unlinked while held: a process already waiting on it finds the file in place, or tries
        # itself; the atomic rename keeps any two downloads from mixing.
        Path(lock.lock_file).unlink(missing_ok=True)
        lock.release()
    raise _failure(entry, failures, destination)


def _offline_cached(destination: Path, entry: WeightsEntry, urls: list[str], failures: list[str]) -> Path:
    """The verified cached file, offline: a missing file, or one that fails verification (left in place),
    is an error saying where and why."""
    if not destination.is_file():
        looked = f" (looked in the mirror: {failures[0]})" if failures else ""
        raise WeightsUnavailableError(
            f"{entry.file_name} is not in the cache{looked} and {OFFLINE_ENV}=1 forbids downloading it from "
            f"{', '.join(urls)}. Put the file at {destination} (or in a directory named by {MIRROR_ENV}).")
    try:
        verify_file(destination, entry, f"the cache ({destination})")
    except WeightsVerificationError as exc:
        raise WeightsVerificationError(
            f"{exc}. The file was left in place at {destination}: {OFFLINE_ENV}=1 forbids downloading another "
            f"copy. Replace it with a good copy, or delete it and load it once without {OFFLINE_ENV}=1.") from exc
    return destination


def _mirror_state(mirror_dir: Path) -> str:
    if mirror_dir.is_dir():
        return f"not in the mirror directory {mirror_dir}, which exists"
    return f"the mirror directory {mirror_dir} does not exist"


def _failure(entry: WeightsEntry, failures: list, destination: Path) -> WeightsError:
    """The error after every source failed: each source and why, then what the user can do."""
    download_failures = [f for f in failures if isinstance(f, DownloadFailed)]
    verification = any(f.verification for f in download_failures)
    unresolved = sorted({f.unresolved_host for f in download_failures if f.unresolved_host})
    tried = "; ".join(f"{f.url} ({f})" if isinstance(f, DownloadFailed) else f for f in failures)
    advice = (f"Download it by hand and put it at {destination} (or in a directory named by {MIRROR_ENV}).")
    if unresolved:
        advice = (f"The host name {', '.join(unresolved)} cannot be resolved: is this machine offline? Set "
                  f"{OFFLINE_ENV}=1 and put the file at {destination}, or set {MIRROR_ENV} to a directory or "
                  "URL that holds it.")
    error = WeightsVerificationError if verification else WeightsUnavailableError
    return error(f"could not get a verified {entry.file_name}; tried: {tried}. {advice}")


def download_url(url: str, progress: bool = True) -> Path:
    """A user-given checkpoint URL, downloaded into the cache as ``by-url/<hash of the URL>/<file name>``
    and verified as a manifest entry without a sha256 is (hash prefix, first-use record); no mirror."""
    name = Path(urlparse(url).path).name or "checkpoint.pth"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    entry = WeightsEntry(id=url, entrypoint="", urls=(url,), file_name=f"{URL_CACHE_FOLDER}/{key}/{name}",
                         preprocessing={}, license="unknown", hash_prefix=_hash_prefix_of(name))
    return _resolve(entry, progress, mirror="")


def _hash_prefix_of(file_name: str) -> str | None:
    """torch.hub's convention: ``name-<sha256 prefix>.ext`` (at least 8 hex digits)."""
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match and len(match.group(1)) >= 8 else None


def _verified_cached(path: Path, entry: WeightsEntry, remove_failed: bool = True) -> bool:
    """Whether the cached file exists and verifies; a cached file that fails is removed (with a
    warning) if ``remove_failed``, which only the holder of the download lock may ask for, online."""
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
