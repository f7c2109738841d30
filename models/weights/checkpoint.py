"""Read checkpoints safely and adapt every upstream layout to our models' state dicts.

Supported layouts: a plain state dict; keys prefixed with ``module.`` (DataParallel) or
``_orig_mod.`` (torch.compile); training checkpoints holding ``state_dict_ema`` (preferred),
``state_dict`` or ``model``; a zip archive holding such a file as a member. Tensors whose shapes
differ only by trailing singleton dimensions (a Linear stored as a 1x1 convolution, or the
reverse) are reshaped. Unpickling always runs with ``weights_only=True``; the only extra global
allowed is ``argparse.Namespace``, which timm training checkpoints store as ``args``.
"""

from __future__ import annotations

import argparse
import io
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath

import torch
from torch import nn

from ..errors import CheckpointMismatchError, NotACheckpointError, UnsafeCheckpointError

SAFE_GLOBALS = (argparse.Namespace,)
STATE_DICT_KEYS = ("state_dict_ema", "state_dict", "model", "model_state")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".bin", ".ckpt")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_REFUSED = re.compile(r"Unsupported (operand|class|global)|unrecognized function")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"  # pickle protocol 2 and later; torch.save's legacy format starts with one

StateDict = dict[str, torch.Tensor]
KeyMap = Callable[[str], str]


def read_checkpoint(path: Path, archive_member: str | None = None) -> object:
    """Unpickle ``path`` (or its zip ``archive_member``) with only harmless globals allowed."""
    path = Path(path)
    if _is_plain_zip(path):
        with zipfile.ZipFile(path) as archive:
            member = archive_member or _single_checkpoint_member(path, archive.namelist())
            _check_member_name(path, member)
            try:
                data = archive.read(member)
            except KeyError as exc:
                raise UnsafeCheckpointError(
                    f"{path} has no member {member!r}; members: {archive.namelist()}") from exc
        return _safe_load(io.BytesIO(data), f"{path}:{member}")
    return _safe_load(path, str(path))


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
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = _UNSUPPORTED_GLOBAL.search(str(exc))
        if match is None and not _REFUSED.search(str(exc)):
            raise NotACheckpointError(f"{name} is not a PyTorch checkpoint: its pickle is malformed "
                                      "(a damaged or truncated file?)") from exc
        what = f"the global {match.group(1)}" if match else "an object"
        raise UnsafeCheckpointError(
            f"refusing to load {name}: it needs {what}, which is not allow-listed for "
            f"safe loading; only tensors, containers and {[g.__qualname__ for g in SAFE_GLOBALS]} "
            "are accepted") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, IndexError, KeyError, ValueError) as exc:
        what = "zip archive" if head.startswith(_ZIP_MAGIC) else "pickle"
        raise NotACheckpointError(f"{name} is not a readable PyTorch checkpoint: the {what} ends early or is "
                                  "damaged (a truncated download? delete the file to fetch it again)") from exc


def _head(source: Path | io.BytesIO, size: int = 64) -> bytes:
    if isinstance(source, io.BytesIO):
        return source.getvalue()[:size]
    with open(source, "rb") as handle:
        return handle.read(size)


def not_a_checkpoint(head: bytes) -> str | None:
    """Why a file starting with ``head`` cannot be a checkpoint (None: it may be one, a zip or a pickle)."""
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return None
    if not head:
        return "the file is empty"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return (f"it is an HTML or XML page ({text[:40].decode('utf-8', 'replace')!r}...), probably an error or "
                "login page saved in place of the file")
    return f"it is neither a zip archive nor a pickle (it starts with the bytes {head[:8].hex(' ')})"


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
