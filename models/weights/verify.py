"""Verification of weights files: sha256, hash prefix, size and the first-use record."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from ..errors import WeightsError, WeightsVerificationError
from .loading import extract_state_dict, read_checkpoint
from .manifest import WeightsEntry
from .records import read_record, record_path, remember

_CHUNK = 1 << 20


class UnverifiedWeightsWarning(UserWarning):
    """A weights file was loaded that no sha256 in the manifest pins."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, entry: WeightsEntry, origin: str, record: bool = True) -> str:
    """The sha256 of ``path``, which must have the size and hash the entry pins and, unless a sha256
    is pinned, the sha256 of its first-use record; raises WeightsVerificationError otherwise.

    A file that nothing pins or records yet must load as a checkpoint (:func:`read_checkpoint` and
    :func:`extract_state_dict`) before it is trusted: its first use. With ``record``, the file is
    recorded (its first-use record is created, or it is added as a copy) and an unchanged recorded
    copy of a file that no sha256 pins is not hashed again (a pinned file is hashed at every load). The
    first use of a file that no sha256 pins gives one UnverifiedWeightsWarning line with its sha256.
    """
    stat = path.stat()
    if entry.size is not None and stat.st_size != entry.size:
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has {stat.st_size} bytes, the manifest expects {entry.size}")
    pinned = entry.sha256.lower() if entry.sha256 is not None else None
    first_use = read_record(entry.file_name)
    # A pinned sha256 is always checked by hashing: a writable cache could fake a record's size and times.
    known = first_use.known_sha256(path) if first_use and pinned is None else None
    actual = known or sha256_of(path)
    if pinned is not None and actual != pinned:
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has sha256 {actual}, the manifest pins {entry.sha256}")
    if entry.hash_prefix is not None and not actual.startswith(entry.hash_prefix.lower()):
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has sha256 {actual}, which does not start with the "
            f"hash prefix {entry.hash_prefix} of its file name")
    if pinned is None and first_use is not None and actual != first_use.sha256:
        raise WeightsVerificationError(
            f"{entry.file_name} from {origin} has sha256 {actual}, but when it was first used "
            f"({first_use.first_seen}) it had sha256 {first_use.sha256}; if the publisher changed the file "
            f"on purpose, delete {record_path(entry.file_name)} (or pin the new sha256 in the manifest)")
    if pinned is None and first_use is None:
        _check_loads(path, entry, origin)
    if record and known is None:
        remember(entry.file_name, path, actual, stat)
    if pinned is None and first_use is None:
        checked = f"hash prefix {entry.hash_prefix} checked" if entry.hash_prefix else "no hash checked"
        warnings.warn(f"{entry.file_name} is not pinned by a sha256 in the manifest ({checked}); "
                      f"its sha256 is {actual}, recorded for first-use checks of later loads",
                      UnverifiedWeightsWarning, stacklevel=2)
    return actual


def _check_loads(path: Path, entry: WeightsEntry, origin: str) -> None:
    """Refuse to trust a first use that does not load as a checkpoint (a truncated download, a damaged file)."""
    try:
        extract_state_dict(read_checkpoint(path, entry.archive_member, name=f"{entry.file_name} from {origin}"),
                           f"{entry.file_name} from {origin}")
    except WeightsError as exc:
        raise WeightsVerificationError(f"{exc}; nothing pins or records {entry.file_name}, so only a file that "
                                       "loads as a checkpoint is recorded as its first use") from exc


def verification_of(entry: WeightsEntry) -> str:
    """How a load of ``entry`` is verified now: "sha256 pinned", "hash prefix" (and its first-use
    record), "first-use record" or "none" (an unpinned file seen for the first time)."""
    if entry.sha256 is not None:
        return "sha256 pinned"
    if entry.hash_prefix is not None:
        return "hash prefix"
    return "first-use record" if read_record(entry.file_name) is not None else "none"
