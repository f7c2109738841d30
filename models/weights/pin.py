"""Download manifest entries and pin their sha256 and size into the manifest.

    python3 -m models pin-weights                       # every entry without a sha256
    python3 -m models pin-weights nvidia_resneXt.ngc_amp_20.06.0 ...   # these entries

Files come through the normal resolver (cache, CONVNETS_HUB_MIRROR, then the URLs), so an
entry with a hash prefix is checked against it before its sha256 is written. An entry's Hugging
Face Hub sources (``hf_hub_sources``) are fetched into Hugging Face's cache and pinned alike.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence

from ..errors import UnknownWeightsError
from ..files import write_text_atomically
from .hf_hub import resolve_hub_source
from .manifest import WeightsEntry, load_manifest
from .records import read_record
from .sources import resolve_weights_file
from .verify import UnverifiedWeightsWarning, sha256_of


def pin(ids: Sequence[str] = (), progress: bool = True) -> list[WeightsEntry]:
    """Pin the given entries (default: all unpinned ones) in the manifest in use; returns them pinned."""
    manifest = load_manifest()
    chosen = [e for e in manifest.entries if (e.id in ids if ids else e.sha256 is None)]
    unknown = sorted(set(ids) - {e.id for e in chosen})
    if unknown:
        raise UnknownWeightsError(f"no such manifest ids: {unknown} in {manifest.path}")
    pinned, sources = {}, {}
    for entry in chosen:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedWeightsWarning)
            path = resolve_weights_file(dataclasses.replace(entry, sha256=None, size=None), progress)
            hub_files = [resolve_hub_source(entry, dataclasses.replace(source, sha256=None, size=None))[0]
                         for source in entry.hf_hub_sources]
        record = read_record(entry.file_name)  # the resolver has just hashed the file and recorded it
        pinned[entry.id] = {"sha256": record.sha256 if record else sha256_of(path), "size": path.stat().st_size}
        sources[entry.id] = [{"sha256": sha256_of(file), "size": file.stat().st_size} for file in hub_files]
    raw = json.loads(manifest.path.read_text(encoding="utf-8"))
    for item in raw["entries"]:
        item.update(pinned.get(item["id"], {}))
        for source, values in zip(item.get("hf_hub_sources", ()), sources.get(item["id"], ()), strict=False):
            source.update(values)
    write_text_atomically(manifest.path, json.dumps(raw, indent=2) + "\n")
    return [e for e in load_manifest().entries if e.id in pinned]
