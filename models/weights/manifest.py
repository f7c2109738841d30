"""The weights manifest: which checkpoint files exist, where they live and how to verify them.

The repository's ``weights_manifest.json`` is used unless ``CONVNETS_HUB_MANIFEST`` names another
file (air-gapped installations and tests). Each entry describes one upstream checkpoint: the
entrypoint (and ``model_type``) it serves, its URLs, file name, hashes, archive member, classifier
size, published metrics, parameter count, preprocessing and license. Which keys a checkpoint's
tensors have is the model's business (``ModelSpec.key_map``), not the manifest's. An entry may also
list the same weights published on the Hugging Face Hub (``hf_hub_sources``, tried in order after
the upstream file), each with its own file name, sha256, size and key layout: ``"timm"`` where the
keys are already the model's own (timm's), so that ``key_map`` is not applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, UnknownWeightsError
from ..repository import MANIFEST_FILE, REPO_ROOT
from ..settings import MANIFEST_ENV, manifest_override

SCHEMA_VERSION = 2
"""The manifest format this code reads (and every older one); a newer one is refused with a clear error.
Version 2 added ``hf_hub_sources``."""
KEY_LAYOUTS = ("upstream", "timm")
HF_PREFIX = "hf-hub:"
"""What starts a Hugging Face Hub id given as ``weights=`` (``hf-hub:org/name``), as in timm."""


@dataclass(frozen=True)
class HubSource:
    """The file of a manifest entry as a Hugging Face Hub repository publishes it."""

    hf_hub_id: str
    file_name: str = "model.safetensors"
    sha256: str | None = None
    size: int | None = None
    key_layout: str = "timm"

    @classmethod
    def from_json(cls, raw: dict[str, Any], entry_id: str) -> HubSource:
        if not isinstance(raw, dict) or "hf_hub_id" not in raw or set(raw) - set(cls.__dataclass_fields__):
            raise InvalidArgumentError(f"manifest entry {entry_id!r}: each of hf_hub_sources needs hf_hub_id and "
                                       f"may have only {sorted(cls.__dataclass_fields__)}; got {raw!r}")
        source = cls(**raw)
        if source.key_layout not in KEY_LAYOUTS:
            raise InvalidArgumentError(f"manifest entry {entry_id!r}: key_layout {source.key_layout!r} is not one "
                                       f"of {KEY_LAYOUTS}")
        return source


@dataclass(frozen=True)
class WeightsEntry:
    """One checkpoint file of the manifest."""

    id: str
    entrypoint: str
    urls: tuple[str, ...]
    file_name: str
    preprocessing: dict[str, Any]
    license: str
    model_type: str | None = None
    default: bool = False
    sha256: str | None = None
    hash_prefix: str | None = None
    size: int | None = None
    archive_member: str | None = None
    num_classes: int = 1000
    num_params: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    hf_hub_sources: tuple[HubSource, ...] = ()
    key_layout: str = "upstream"

    @property
    def hf_hub_id(self) -> str | None:
        """The Hugging Face Hub repository of the same weights (timm's ``hf_hub_id``): the first Hub source's."""
        return self.hf_hub_sources[0].hf_hub_id if self.hf_hub_sources else None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WeightsEntry:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidArgumentError(f"manifest entry {raw.get('id')!r} has unknown fields {unknown}")
        missing = [name for name in ("id", "entrypoint", "urls", "file_name", "preprocessing", "license")
                   if name not in raw]
        if missing:
            raise InvalidArgumentError(f"manifest entry {raw.get('id')!r} lacks the fields {missing}")
        sources = tuple(HubSource.from_json(item, raw["id"]) for item in raw.get("hf_hub_sources", ()))
        return cls(**{**raw, "urls": tuple(raw["urls"]), "hf_hub_sources": sources})


class Manifest:
    """All entries of one manifest file, looked up by id or by entrypoint."""

    def __init__(self, entries: list[WeightsEntry], path: Path):
        self.path = path
        self.entries = entries
        self._by_id = {entry.id: entry for entry in entries}
        if len(self._by_id) != len(entries):
            raise InvalidArgumentError(f"manifest {path} has duplicate entry ids")

    def for_entrypoint(self, entrypoint: str, model_type: str | None = None) -> list[WeightsEntry]:
        return [e for e in self.entries if e.entrypoint == entrypoint and e.model_type == model_type]

    def default(self, entrypoint: str, model_type: str | None = None) -> WeightsEntry | None:
        """The entry loaded by ``pretrained=True`` (the one marked default, else the first)."""
        candidates = self.for_entrypoint(entrypoint, model_type)
        return next((e for e in candidates if e.default), candidates[0] if candidates else None)

    def get(self, weights_id: str, entrypoint: str, model_type: str | None = None) -> WeightsEntry:
        """The entry ``weights_id``, which must serve ``entrypoint`` (and ``model_type``)."""
        entry = self._by_id.get(weights_id)
        valid = [e.id for e in self.for_entrypoint(entrypoint, model_type)]
        served = _describe(entrypoint, model_type)
        if entry is not None and (entry.entrypoint, entry.model_type) != (entrypoint, model_type):
            owner = _describe(entry.entrypoint, entry.model_type)
            raise UnknownWeightsError(f"weights={weights_id!r} are the weights of {owner}, not of {served}; "
                                      f"valid ids: {valid}")
        if entry is None:
            raise UnknownWeightsError(
                f"weights={weights_id!r} is neither a weights id of {served} in {self.path} "
                f"nor an existing file or an http(s) URL; valid ids: {valid}"
            )
        return entry

    def __contains__(self, weights_id: object) -> bool:
        return weights_id in self._by_id


def _describe(entrypoint: str, model_type: str | None) -> str:
    return entrypoint + (f" (model_type={model_type!r})" if model_type else "")


def manifest_path(repo_root: Path = REPO_ROOT) -> Path:
    """The manifest in use: ``$CONVNETS_HUB_MANIFEST`` if set, else the one of the checkout ``repo_root``."""
    return manifest_override() or repo_root / MANIFEST_FILE


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest file (the one in use when ``path`` is None)."""
    path = manifest_path() if path is None else Path(path)
    stat = path.stat() if path.is_file() else None
    if stat is None:
        raise InvalidArgumentError(f"manifest {path} does not exist (set by {MANIFEST_ENV} or the repository)")
    return _read_manifest(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_manifest(path: str, mtime_ns: int, size: int) -> Manifest:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        version = raw["schema_version"]
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise InvalidArgumentError(
                f"manifest {path} has schema_version {version!r}, newer than this checkout reads "
                f"({SCHEMA_VERSION}); update the repository (torch.hub.load(..., force_reload=True), or git pull)")
        entries = [WeightsEntry.from_json(item) for item in raw["entries"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(f"manifest {path} is not a valid weights manifest "
                                   f"({type(exc).__name__}: {exc})") from exc
    return Manifest(entries, Path(path))
