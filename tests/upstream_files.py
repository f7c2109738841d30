"""Checkpoint files in the exact upstream layouts, made from the seeded parity weights.

Used to serve real-looking NGC, Facebook and torchvision files from a loopback mirror, so that
``pretrained=True`` runs the whole loading path offline.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

import torch
from conftest import REFERENCE, REPO, parity_fixture, seeded_checkpoint


def fixture_name(entry: dict) -> str:
    """The parity oracle holding this entry's upstream keys and shapes."""
    if entry["entrypoint"] == "nvidia_gpunet":
        return f"gpunet_{entry['model_type']}"
    if entry["entrypoint"].startswith("nvidia_"):
        return entry["entrypoint"]
    return entry["entrypoint"].rsplit("_", 1)[0] + "_ssl_swsl"


UPSTREAM = json.loads((REFERENCE / "upstream_weights.json").read_text())


def upstream_group(entry: dict) -> str | None:
    """The group of ``upstream_weights.json`` that describes the entry's file (its layout), if any."""
    key = entry.get("model_type") or entry["entrypoint"]
    return next((group for group, files in UPSTREAM.items() if isinstance(files, dict) and key in files), None)


def upstream_bytes(entry: dict, state: dict[str, torch.Tensor]) -> bytes:
    """``state`` serialised as the upstream file of ``entry`` is (``upstream_weights.json`` says how)."""
    buffer = io.BytesIO()
    group = upstream_group(entry)
    if group == "nvidia_convnets":  # real files may prefix every key with "module."
        torch.save({f"module.{key}": value for key, value in state.items()}, buffer)
    elif group == "nvidia_gpunet" and entry.get("model_type") in ("GPUNet-P0", "GPUNet-P1"):  # plain state dict
        torch.save(state, buffer)
    elif group == "nvidia_gpunet":  # a timm training checkpoint, EMA weights preferred
        stale = {key: torch.zeros_like(value) for key, value in state.items()}
        torch.save({"epoch": 450, "arch": "gpunet", "state_dict": stale, "state_dict_ema": state,
                    "args": argparse.Namespace(model="gpunet", lr=0.08), "version": 2}, buffer)
    else:
        torch.save(state, buffer)
    if entry.get("archive_member"):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr(entry["archive_member"], buffer.getvalue())
        return archive.getvalue()
    return buffer.getvalue()


def write_mirror(directory: Path, entry_ids: list[str], states: dict[str, dict] | None = None) -> Path:
    """Write the chosen entries' files into ``directory``; returns a copy of the manifest pinning them.

    The other entries stay as they are. ``states`` may give an entry's weights by id; by default the
    seeded parity weights are used.
    """
    directory.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((REPO / "weights_manifest.json").read_text())
    entries = []
    for entry in manifest["entries"]:
        if entry["id"] in entry_ids:
            state = (states or {}).get(entry["id"]) or seeded_checkpoint(parity_fixture(fixture_name(entry)))
            payload = upstream_bytes(entry, state)
            (directory / entry["file_name"]).write_bytes(payload)
            entry = {**entry, "sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload), "hash_prefix": None}
        entries.append(entry)
    missing = set(entry_ids) - {entry["id"] for entry in manifest["entries"]}
    if missing:
        raise KeyError(f"no manifest entries {sorted(missing)}")
    path = directory / "manifest.json"
    path.write_text(json.dumps({**manifest, "entries": entries}))
    return path
