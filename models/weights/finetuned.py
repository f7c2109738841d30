"""The fine-tuned checkpoint of ``python3 -m models finetune``: weights with what they are.

Besides the model's state dict it records the entrypoint (and model type) it was fine-tuned from,
the class names, the preprocessing it was trained with, whether the model was built as the
entrypoint builds it for its published weights, and a digest of each training image (``validate``
warns about data it was trained on). ``weights=<file>`` in any model entrypoint
recognises it and builds the head, ``pretrained_cfg`` and class names from it. Training state
(optimizer, scheduler, RNG...) may sit beside it under ``"training"``; loading a model ignores it.
Everything in it is a tensor, a number, a string or a container of those, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ...processing.transforms import PREPROCESS_KEYS
from ..errors import CheckpointMismatchError

FORMAT = "convnets-hub/finetuned"
VERSION = 1
TRAINING_DIGESTS_KEY = "training_digests"
"""A 1-D int64 tensor: one content digest per training image (``models/train/file_digests.py``); optional."""


@dataclass(frozen=True)
class FinetunedCheckpoint:
    """The metadata of a fine-tuned checkpoint, and its model weights."""

    entrypoint: str
    model_type: str | None
    class_names: tuple[str, ...]
    preprocessing: dict[str, Any]
    pretrained_build: bool
    state_dict: dict[str, torch.Tensor]
    training_digests: tuple[int, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_record(self) -> dict[str, Any]:
        """What is saved (``torch.save``): the format's tag and fields."""
        return {"format": FORMAT, "version": VERSION, "entrypoint": self.entrypoint, "model_type": self.model_type,
                "class_names": list(self.class_names),
                "preprocessing": {key: list(value) if isinstance(value, tuple) else value
                                  for key, value in self.preprocessing.items()},
                "pretrained_build": self.pretrained_build, "state_dict": self.state_dict,
                TRAINING_DIGESTS_KEY: torch.tensor(sorted(self.training_digests), dtype=torch.int64)}


def recognise_finetuned(contents: object, source: str) -> FinetunedCheckpoint | None:
    """The fine-tuned checkpoint in ``contents`` (what a checkpoint file unpickled to); None for any
    other checkpoint. A file tagged as ours but damaged or of a newer version raises
    CheckpointMismatchError naming ``source``."""
    if not isinstance(contents, Mapping) or contents.get("format") != FORMAT:
        return None
    if contents.get("version") != VERSION:
        raise CheckpointMismatchError(f"{source} is a fine-tuned checkpoint of version {contents.get('version')!r}; "
                                      f"this checkout reads version {VERSION} (update convnets-hub)")
    try:
        checkpoint = FinetunedCheckpoint(
            entrypoint=str(contents["entrypoint"]), model_type=contents["model_type"],
            class_names=tuple(str(name) for name in contents["class_names"]),
            preprocessing={key: tuple(value) if isinstance(value, list) else value
                           for key, value in contents["preprocessing"].items() if key in PREPROCESS_KEYS},
            pretrained_build=bool(contents["pretrained_build"]), state_dict=dict(contents["state_dict"]),
            training_digests=tuple(torch.as_tensor(contents.get(TRAINING_DIGESTS_KEY, [])).tolist()))
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointMismatchError(f"{source} is tagged as a fine-tuned checkpoint but lacks {exc}") from exc
    if set(checkpoint.preprocessing) != set(PREPROCESS_KEYS) or not checkpoint.class_names:
        raise CheckpointMismatchError(f"{source} is tagged as a fine-tuned checkpoint but its preprocessing "
                                      f"{checkpoint.preprocessing} or class names are incomplete")
    return checkpoint
