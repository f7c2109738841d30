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

import math
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ...processing.errors import ProcessingArgumentError
from ...processing.transforms import PREPROCESS_KEYS, PreprocessConfig
from ..errors import CheckpointMismatchError

FORMAT = "convnets-hub/finetuned"
VERSION = 1
TRAINING_DIGESTS_KEY = "training_digests"
"""A 1-D int64 tensor: one content digest per training image (``models/train/file_digests.py``); optional."""
MIN_CROP_PCT = 0.1
"""The smallest center-crop fraction a checkpoint may ask for (timm's models use 0.75 to 1)."""
MAX_INPUT_SIDE = 4096
"""The largest input height or width a checkpoint may ask for, in pixels."""
_LINE_BREAKING = ("Cc", "Zl", "Zp")  # Unicode categories of control characters and line or paragraph separators


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a class name (None if it can): a class name is one line of UTF-8 text,
    as ``labels.txt`` files, JSON rows and Triton's classification output carry it."""
    if not isinstance(name, str) or not name:
        return "a class name must be a non-empty string"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not UTF-8 text (a name in another encoding)"
    if any(unicodedata.category(character) in _LINE_BREAKING for character in name):
        return "it holds a line break or a control character"
    return None


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
            class_names=tuple(contents["class_names"]),
            preprocessing={key: tuple(value) if isinstance(value, list) else value
                           for key, value in contents["preprocessing"].items() if key in PREPROCESS_KEYS},
            pretrained_build=bool(contents["pretrained_build"]), state_dict=dict(contents["state_dict"]),
            training_digests=tuple(torch.as_tensor(contents.get(TRAINING_DIGESTS_KEY, [])).tolist()))
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointMismatchError(f"{source} is tagged as a fine-tuned checkpoint but lacks {exc}") from exc
    if set(checkpoint.preprocessing) != set(PREPROCESS_KEYS) or not checkpoint.class_names:
        raise CheckpointMismatchError(f"{source} is tagged as a fine-tuned checkpoint but its preprocessing "
                                      f"{checkpoint.preprocessing} or class names are incomplete")
    _check_class_names(checkpoint.class_names, source)
    _check_preprocessing(checkpoint.preprocessing, source)
    return checkpoint


def check_head(checkpoint: FinetunedCheckpoint, classifier: str, source: str) -> None:
    """A CheckpointMismatchError unless the checkpoint's classifier ``classifier`` has a row per class
    name (checked before a model is built for as many classes as the checkpoint names)."""
    weight = checkpoint.state_dict.get(f"{classifier}.weight")
    rows = weight.shape[0] if isinstance(weight, torch.Tensor) and weight.dim() else None
    if rows != checkpoint.num_classes:
        raise CheckpointMismatchError(f"{source} names {checkpoint.num_classes} classes but its classifier "
                                      f"'{classifier}' has {'no weight' if rows is None else f'{rows} rows'}: "
                                      "the names and the weights are not of one model")


def _check_class_names(names: tuple[Any, ...], source: str) -> None:
    for index, name in enumerate(names):
        problem = class_name_problem(name)
        if problem is not None:
            raise CheckpointMismatchError(f"{source}: class name {index} ({name!r}) is refused: {problem}")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise CheckpointMismatchError(f"{source}: its class names are not unique: "
                                      + ", ".join(repr(name) for name in repeated[:3]))


def _check_preprocessing(preprocessing: dict[str, Any], source: str) -> None:
    """A CheckpointMismatchError unless the preprocessing can be applied: a valid configuration,
    finite means, positive finite standard deviations, a crop of at least ``MIN_CROP_PCT`` of an
    input no larger than ``MAX_INPUT_SIDE``."""
    try:
        config = PreprocessConfig.from_mapping(preprocessing)
    except ProcessingArgumentError as exc:
        raise CheckpointMismatchError(f"{source}: its preprocessing is not valid: {exc}") from exc
    values = config.mean + config.std + (config.crop_pct,)
    if not (all(math.isfinite(value) for value in values) and all(value > 0 for value in config.std)
            and config.crop_pct >= MIN_CROP_PCT and all(0 < side <= MAX_INPUT_SIDE for side in config.input_size[1:])):
        raise CheckpointMismatchError(
            f"{source}: its preprocessing {dict(preprocessing)} cannot be applied (std must be positive, "
            f"crop_pct in [{MIN_CROP_PCT}, 1], the input at most {MAX_INPUT_SIDE} px a side, every value finite)")
