"""A model folder as timm and the Hugging Face Hub lay it out: ``model.safetensors``, ``config.json``, ``README.md``.

``config.json`` is timm's: ``architecture`` (timm's model name), ``num_classes``, ``num_features``,
``model_args`` (timm's build options) and ``pretrained_cfg`` (preprocessing, classifier,
``label_names``...), so that ``timm.create_model("local-dir:DIR", pretrained=True)`` or
``"hf-hub:org/name"`` builds and loads it. Beside them, ``convnets_hub`` says which entrypoint (and
model type) the weights belong to and whether the model was built as for its published weights:
``weights=DIR`` in that entrypoint loads the folder as a fine-tuned checkpoint
(:mod:`.finetuned`). A folder without it (one of timm's own) is read as a plain checkpoint file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...processing.labels import default_class_names
from ...processing.transforms import PREPROCESS_KEYS
from ..errors import CheckpointMismatchError, NotACheckpointError
from ..files import write_text_atomically
from .finetuned import FinetunedCheckpoint, recognise_finetuned
from .loading import extract_state_dict, read_checkpoint
from .safetensors_io import write_safetensors

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
CONFIG_KEY = "convnets_hub"
VERSION = 1


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` is a directory holding a ``config.json``."""
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file()


def write_model_folder(directory: Path, checkpoint: FinetunedCheckpoint, config: Mapping[str, Any],
                       card: str) -> Path:
    """Write ``checkpoint``'s weights, ``config`` (timm's config.json, to which the ``convnets_hub``
    section is added) and the model ``card`` into ``directory`` (created); each file atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ours = {"version": VERSION, "entrypoint": checkpoint.entrypoint, "model_type": checkpoint.model_type,
            "pretrained_build": checkpoint.pretrained_build}
    write_safetensors(directory / WEIGHTS_FILE, checkpoint.state_dict)
    write_text_atomically(directory / CONFIG_FILE, json.dumps({**config, CONFIG_KEY: ours}, indent=2) + "\n")
    write_text_atomically(directory / CARD_FILE, card)
    return directory


def read_model_folder(directory: Path, name: str | None = None) -> tuple[Path, FinetunedCheckpoint | None]:
    """The weights file of a model folder and, for one of ours, its weights with what they are."""
    directory = Path(directory)
    name = name or str(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise NotACheckpointError(f"the model folder {name} has no {WEIGHTS_FILE}")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotACheckpointError(f"{name}/{CONFIG_FILE} is not readable JSON ({exc})") from exc
    ours = config.get(CONFIG_KEY) if isinstance(config, dict) else None
    if not isinstance(ours, dict):
        return weights, None
    if ours.get("version") != VERSION:
        raise CheckpointMismatchError(f"{name} is a model folder of version {ours.get('version')!r}; this "
                                      f"checkout reads version {VERSION} (update convnets-hub)")
    try:
        cfg = config["pretrained_cfg"]
        state = extract_state_dict(read_checkpoint(weights, name=f"{name}/{WEIGHTS_FILE}"), f"{name}/{WEIGHTS_FILE}")
        labels = cfg.get("label_names") or default_class_names(int(config["num_classes"]))
        checkpoint = FinetunedCheckpoint(
            entrypoint=str(ours["entrypoint"]), model_type=ours["model_type"],
            class_names=tuple(str(label) for label in labels),
            preprocessing={key: tuple(cfg[key]) if isinstance(cfg[key], list) else cfg[key] for key in PREPROCESS_KEYS},
            pretrained_build=bool(ours["pretrained_build"]), state_dict=state)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointMismatchError(f"{name}/{CONFIG_FILE} is incomplete: it lacks {exc}") from exc
    return weights, checkpoint


def built_for_weights(cfg: Mapping[str, Any]) -> bool:
    """Whether the entrypoint built the model of ``cfg`` as it builds it for weights (its pretrained build
    options): for published weights, and for a fine-tuned checkpoint or folder of a model so built."""
    if cfg["checkpoint"] is None:
        return False
    if cfg["id"] is not None:
        return True
    path = Path(cfg["checkpoint"])
    source = read_model_folder(path)[1] if path.is_dir() else recognise_finetuned(read_checkpoint(path), str(path))
    return True if source is None else source.pretrained_build
