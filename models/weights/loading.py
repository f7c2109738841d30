"""Read checkpoints safely and adapt every upstream layout to our models' state dicts.

Supported layouts: a safetensors file (read without pickle, :mod:`.safetensors_io`); a plain state
dict; keys prefixed with ``module.`` (DataParallel) or
``_orig_mod.`` (torch.compile); training checkpoints holding ``state_dict_ema`` (preferred),
``state_dict`` or ``model``; a zip archive holding such a file as a member. Tensors whose shapes
differ only by trailing singleton dimensions (a Linear stored as a 1x1 convolution, or the
reverse) are reshaped. Unpickling always runs with ``weights_only=True``; the only extra global
allowed is ``argparse.Namespace``, which timm training checkpoints store as ``args``.

A zip member is inflated only up to ``MAX_INFLATION`` times the archive's size, and never beyond
``MAX_MEMBER_BYTES``: weights barely compress (float tensors deflate by a few percent), so a member
claiming more is a zip bomb, refused before a byte of it is inflated. The same bound holds for the
members of a ``torch.save`` file (itself a zip, whose tensors torch stores uncompressed), all together.
"""

from __future__ import annotations

import argparse
import io
import pickle
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath

import torch
from torch import nn

from ..errors import CheckpointMismatchError, NotACheckpointError, UnsafeCheckpointError
from .safetensors_io import looks_like_safetensors, read_safetensors

SAFE_GLOBALS = (argparse.Namespace,)
STATE_DICT_KEYS = ("state_dict_ema", "state_dict", "model", "model_state")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".bin", ".ckpt", ".safetensors")
MAX_INFLATION = 16
MAX_MEMBER_BYTES = 4 << 30
# torch's weights_only unpickler names a refused global "GLOBAL <module>.<name>" since torch 2.4 ("Unsupported
# global: GLOBAL x.y was not an allowed global by default", "unsupported GLOBAL x.y whose module x is blocked")
# and "Unsupported class x.y" before; its other refusals (reduce, NEWOBJ, BUILD, an opcode such as protocol 4's
# STACK_GLOBAL) name no global.
_REFUSED_GLOBAL = re.compile(r"(?:\bGLOBAL|[Uu]nsupported class) ([\w.]+)")
_REFUSAL = re.compile(r"(?i)unsupported (?:operand|class|global)|whose module \S+ is blocked|not an allowed global|"
                      r"unrecognized function|can only (?:create new object|build)|instantiate unsupported")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"  # pickle protocol 2 and later; torch.save's legacy format starts with one

StateDict = dict[str, torch.Tensor]
KeyMap = Callable[[str], str]


def read_checkpoint(path: Path, archive_member: str | None = None, name: str | None = None) -> object:
    """Unpickle ``path`` (or its zip ``archive_member``) with only harmless globals allowed, or read
    it as a safetensors file if it is one (whatever its name).

    Errors call the file ``name`` (default: its path).
    """
    path = Path(path)
    name = name or str(path)
    if looks_like_safetensors(_head(path)):
        return read_safetensors(path, name)
    if _is_plain_zip(path):
        with zipfile.ZipFile(path) as archive:
            member = archive_member or _single_checkpoint_member(path, archive.namelist())
            _check_member_name(path, member)
            data = _read_member(path, archive, member, f"{name}:{member}")
        if looks_like_safetensors(data[:64]):
            return read_safetensors(data, f"{name}:{member}")
        return _safe_load(io.BytesIO(data), f"{name}:{member}")
    return _safe_load(path, name)


def extract_state_dict(checkpoint: object, source: str) -> StateDict:
    """The model weights inside a checkpoint object, without wrapper prefixes."""
    state = checkpoint
    if isinstance(checkpoint, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), Mapping):
                state = checkpoint[key]
                break
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointMismatchError(
            f"{source} holds no state dict (looked for a dict of tensors, or one under {list(STATE_DICT_KEYS)})")
    odd = [key for key in state if not isinstance(key, str)]
    if odd:
        raise CheckpointMismatchError(f"{source} holds a dict of tensors whose keys are not all parameter names "
                                      f"(strings): {len(odd)} keys such as {odd[0]!r}")
    return {_strip_wrappers(key): value for key, value in state.items()}


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
              skip_prefixes: Iterable[str] = ()) -> None:
    """Copy ``state`` into ``model`` strictly, except for keys under ``skip_prefixes``.

    Shapes that differ only by trailing singleton dimensions are reshaped. A mismatch raises
    CheckpointMismatchError naming ``source`` and the first missing, unexpected or misshapen keys.
    """
    skip = tuple(skip_prefixes)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}
    given = {k: v for k, v in state.items() if not k.startswith(skip)}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshapen = [f"{k}: checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)}"
                 for k in expected if k in given and not _same_but_trailing_ones(given[k].shape, expected[k].shape)]
    if missing or unexpected or misshapen:
        raise CheckpointMismatchError(
            f"{source} does not fit {type(model).__name__}: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}, {len(misshapen)} shape mismatches "
            f"{misshapen[:3]}")
    reshaped = {k: given[k].reshape(expected[k].shape) for k in expected}
    model.load_state_dict(reshaped, strict=not skip)


def _same_but_trailing_ones(a: torch.Size, b: torch.Size) -> bool:
    """Whether two shapes are equal once their trailing singleton dimensions are dropped
    (``(2, 4, 1, 1)`` and ``(2, 4)``; never ``(3, 2)`` and ``(2, 3)``)."""
    return _without_trailing_ones(a) == _without_trailing_ones(b)


def _without_trailing_ones(shape: torch.Size) -> tuple[int, ...]:
    dims = tuple(shape)
    while dims and dims[-1] == 1:
        dims = dims[:-1]
    return dims


def rename_keys(state: StateDict, key_map: KeyMap) -> StateDict:
    return {key_map(key): value for key, value in state.items()}


def _strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _safe_load(source: Path | io.BytesIO, name: str) -> object:
    head = _head(source)
    reason = not_a_checkpoint(head)
    if reason is not None:
        raise NotACheckpointError(f"{name} is not a PyTorch checkpoint: {reason}")
    if head.startswith(_ZIP_MAGIC):
        _check_torch_zip_members(source, name)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _unsafe_globals(source) or list(dict.fromkeys(_REFUSED_GLOBAL.findall(str(exc))))
        if not refused and not _REFUSAL.search(str(exc)):
            raise NotACheckpointError(f"{name} is not a PyTorch checkpoint: its pickle is malformed "
                                      "(a damaged or truncated file?)") from exc
        what = f"the global{'s' if len(refused) > 1 else ''} {', '.join(refused)}" if refused else "an object"
        raise UnsafeCheckpointError(
            f"refusing to load {name}: it needs {what}, which is not allow-listed for "
            f"safe loading; only tensors, containers and {[g.__qualname__ for g in SAFE_GLOBALS]} "
            "are accepted") from exc
    except (TypeError, AttributeError) as exc:  # an allow-listed global called with what it does not take
        raise UnsafeCheckpointError(
            f"refusing to load {name}: it calls an allow-listed global with arguments it does not take ({exc}); "
            f"only tensors, containers and {[g.__qualname__ for g in SAFE_GLOBALS]} as torch saves them are "
            "accepted") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, IndexError, KeyError, ValueError) as exc:
        what = "zip archive" if head.startswith(_ZIP_MAGIC) else "pickle"
        raise NotACheckpointError(f"{name} is not a readable PyTorch checkpoint: the {what} ends early or is "
                                  "damaged (a truncated download? delete the file to fetch it again)") from exc


def _unsafe_globals(source: Path | io.BytesIO) -> list[str]:
    """The globals of a ``torch.save`` file that ``weights_only`` loading refuses, as torch lists them by
    reading the pickle without running it; empty for other files (a plain pickle) and files it cannot read."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(source))
    except Exception:  # noqa: BLE001 -- what torch cannot list is judged by the wording of its refusal
        return []


def _check_torch_zip_members(source: Path | io.BytesIO, name: str) -> None:
    """Refuse a ``torch.save`` zip whose members would inflate beyond the bound of :func:`_read_member`
    (torch's own reader inflates a deflated member to the size its header claims, unbounded), each
    and all together; a zip that cannot be read is left to torch's reader to report."""
    size = len(source.getvalue()) if isinstance(source, io.BytesIO) else source.stat().st_size
    bound = min(MAX_INFLATION * size, MAX_MEMBER_BYTES)
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return
    finally:
        if isinstance(source, io.BytesIO):
            source.seek(0)
    for info in members:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UnsafeCheckpointError(f"refusing {name}: its member {info.filename!r} is compressed with method "
                                        f"{info.compress_type}, neither stored nor deflated")
    total = sum(info.file_size for info in members)
    if total > bound:
        largest = max(members, key=lambda info: info.file_size)
        raise UnsafeCheckpointError(
            f"refusing {name}: its members inflate to {total} bytes ({largest.filename!r}: {largest.file_size}), "
            f"more than {MAX_INFLATION} times the file's {size} bytes (at most {MAX_MEMBER_BYTES}); weights "
            "barely compress, a zip bomb does")


def _read_member(path: Path, archive: zipfile.ZipFile, member: str, name: str) -> bytes:
    """The bytes of ``member``, refused unless it inflates to at most ``MAX_INFLATION`` times the archive's
    size (and ``MAX_MEMBER_BYTES``); never more is inflated than its header claims."""
    try:
        info = archive.getinfo(member)
    except KeyError as exc:
        raise UnsafeCheckpointError(f"{path} has no member {member!r}; members: {archive.namelist()}") from exc
    refusal = f"refusing archive member {member!r} of {path}"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UnsafeCheckpointError(f"{refusal}: its compression method {info.compress_type} is neither stored "
                                    "nor deflated, the two that checkpoint archives use")
    archive_size = path.stat().st_size
    bound = min(MAX_INFLATION * archive_size, MAX_MEMBER_BYTES)
    if info.file_size > bound:
        raise UnsafeCheckpointError(
            f"{refusal}: it inflates to {info.file_size} bytes, more than {MAX_INFLATION} times the archive's "
            f"{archive_size} bytes (at most {MAX_MEMBER_BYTES}); weights barely compress, a zip bomb does")
    try:
        with archive.open(info) as stream:
            return stream.read(info.file_size)  # inflates at most this much, whatever the stream holds
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise NotACheckpointError(f"{name} is not a readable PyTorch checkpoint: the zip member is damaged "
                                  f"({exc})") from exc


def _head(source: Path | io.BytesIO, size: int = 64) -> bytes:
    if isinstance(source, io.BytesIO):
        return source.getvalue()[:size]
    with open(source, "rb") as handle:
        return handle.read(size)


def not_a_checkpoint(head: bytes) -> str | None:
    """Why a file starting with ``head`` cannot be a checkpoint (None: it may be one, a zip, a pickle or a
    safetensors file)."""
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)) or looks_like_safetensors(head):
        return None
    if not head:
        return "the file is empty"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return (f"it is an HTML or XML page ({text[:40].decode('utf-8', 'replace')!r}...), probably an error or "
                "login page saved in place of the file")
    return (f"it is neither a zip archive nor a pickle, nor a safetensors file (it starts with the bytes "
            f"{head[:8].hex(' ')})")


def _is_plain_zip(path: Path) -> bool:
    """A zip archive that is not itself a torch.save file (those are zips holding ``*/data.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return not any(PurePosixPath(name).name == "data.pkl" and len(PurePosixPath(name).parts) == 2
                       for name in archive.namelist())


def _single_checkpoint_member(path: Path, names: list[str]) -> str:
    candidates = [name for name in names if name.endswith(_CHECKPOINT_SUFFIXES)]
    if len(candidates) != 1:
        raise UnsafeCheckpointError(
            f"{path} is a zip archive with {len(candidates)} checkpoint members {candidates[:5]}; "
            "the manifest entry must name the archive member to load")
    return candidates[0]


def _check_member_name(path: Path, member: str) -> None:
    parts = PurePosixPath(member.replace("\\", "/")).parts
    if not parts or member.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", member):
        raise UnsafeCheckpointError(f"refusing archive member {member!r} of {path}: absolute or '..' path")
