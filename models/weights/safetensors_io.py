"""Checkpoints in the safetensors format: tensors and a JSON header, read without pickle.

A safetensors file starts with the length of its JSON header (8 bytes, little-endian) and the header
itself (``{...``); its tensors follow as raw bytes, so reading one never runs code. Our fine-tuned
checkpoints (:mod:`.finetuned`) keep their metadata in the header's ``__metadata__`` (string values
only) under ``convnets_hub``, as JSON, beside ``format: pt``, which Hugging Face's tools expect;
reading one gives back the same record as its ``torch.save`` form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import NotACheckpointError
from ..files import NewFile

METADATA_KEY = "convnets_hub"
SUFFIX = ".safetensors"
_MAX_HEADER = 100 << 20  # safetensors' own bound on the header


def looks_like_safetensors(head: bytes) -> bool:
    """Whether a file starting with ``head`` (at least 9 bytes) is laid out as a safetensors file."""
    if len(head) < 9:
        return False
    header_size = int.from_bytes(head[:8], "little")
    return 2 <= header_size <= _MAX_HEADER and head[8:9] == b"{"


def read_safetensors(data: Path | bytes, name: str) -> object:
    """The tensors of a safetensors file (its path or bytes) as a state dict, or, for a file with our
    fine-tuned metadata, the record it was saved from (metadata and ``state_dict``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    try:
        tensors = load(data) if isinstance(data, bytes) else load_file(str(data), device="cpu")
        metadata = _metadata(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise NotACheckpointError(f"{name} is not a readable safetensors file: {exc} (a truncated download? "
                                  "delete the file to fetch it again)") from exc
    if METADATA_KEY not in metadata:
        return tensors
    try:
        record = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise NotACheckpointError(f"{name}: its {METADATA_KEY!r} metadata is not JSON ({exc})") from exc
    return {**record, "state_dict": tensors} if isinstance(record, dict) else tensors


def _metadata(source: Path | bytes) -> dict[str, str]:
    """The header's ``__metadata__`` (read after the tensors loaded: the header is valid)."""
    if isinstance(source, bytes):
        header = source[8:8 + int.from_bytes(source[:8], "little")]
    else:
        with open(source, "rb") as handle:
            header = handle.read(int.from_bytes(handle.read(8), "little"))
    metadata = json.loads(header).get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def write_safetensors(path: Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``state_dict`` to ``path`` atomically (contiguous, unshared copies of the tensors), with
    ``metadata`` (JSON-encodable) under ``convnets_hub`` in the header."""
    from safetensors.torch import save

    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in state_dict.items()}
    header = {"format": "pt"}
    if metadata is not None:
        header[METADATA_KEY] = json.dumps(dict(metadata))
    with NewFile(Path(path)) as new:
        new.file.write(save(tensors, metadata=header))
        new.publish()
