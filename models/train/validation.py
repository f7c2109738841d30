"""Top-1, top-5 and loss of a model on an image folder whose folders are its classes (``validate``).

The folder names are ImageNet's WordNet synset ids (``n01440764``, ... as ImageNet's own folders
are named) for a 1000-class ImageNet model, or the class names of a fine-tuned checkpoint; any
subset of the classes may be present. Images get exactly the hub's preprocessing for the model,
as ``classify`` gives them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...processing.labels import imagenet_synsets
from ..errors import DatasetError
from ..wording import count
from .data import (
    PreprocessedImages,
    class_folders,
    describe_unreadable,
    folder_samples,
    listing,
    unreadable_images,
)
from .distributed import Processes
from .file_digests import file_digests, training_digests
from .loop import Metrics, evaluate


def model_class_indices(folder: Path, classes: Sequence[str], cfg: Mapping[str, Any]) -> dict[str, int]:
    """The model's class index of each folder name: by the model's own class names (``label_names``
    of a fine-tuned checkpoint), else by ImageNet's synset ids for a 1000-class head."""
    if cfg.get("label_names"):
        vocabulary, kind = list(cfg["label_names"]), "the model's class names"
    elif cfg["num_classes"] == 1000:
        vocabulary, kind = list(imagenet_synsets()), "ImageNet synset ids (n01440764, ...)"
    else:
        raise DatasetError(f"the model's {cfg['num_classes']}-class head has no class names to match the folders "
                           f"of {folder} with: validate a fine-tuned checkpoint (--weights last.pth or best.pth)")
    index = {name: position for position, name in enumerate(vocabulary)}
    unknown = [name for name in classes if name not in index]
    if unknown:
        raise DatasetError(f"data={str(folder)!r}: {count(len(unknown), 'folder')} {'is not one of' if len(unknown) == 1 else 'are not'} {kind}: "
                           f"{listing(unknown)}")
    return {name: index[name] for name in classes}


def validate_folder(model: nn.Module, data: str | os.PathLike, *, batch_size: int = 64, workers: int = 4,
                    device: str | torch.device = "cpu", progress: bool = True) -> Metrics:
    """``model``'s mean cross-entropy, top-1 and top-5 (in %) on the images under ``data/<class>/``.

    Every image is checked first: files that do not decode are listed in a DatasetError. For a
    fine-tuned checkpoint, ``trained_on`` counts the images it was trained on (by content).
    """
    folder = Path(data).expanduser()
    cfg = model.pretrained_cfg
    classes = class_folders(folder)
    samples = folder_samples(folder, model_class_indices(folder, classes, cfg))
    problems = unreadable_images([path for path, _ in samples], workers=max(1, workers), progress=progress)
    if problems:
        raise DatasetError(f"data={str(folder)!r}: {describe_unreadable(problems)}; fix or delete them")
    loader = DataLoader(PreprocessedImages(samples, cfg), batch_size=batch_size, num_workers=workers)
    metrics = evaluate(model, loader, torch.device(device), None, Processes(), total=len(loader), progress=progress,
                       description=f"validating {len(samples)} images")
    return dataclasses.replace(metrics, trained_on=_trained_on(cfg, [path for path, _ in samples], workers))


def _trained_on(cfg: dict, paths: list[str], workers: int) -> int:
    """How many of ``paths`` are among the training images that the model's fine-tuned checkpoint records."""
    if not cfg.get("checkpoint") or cfg.get("id"):  # published weights record no training files
        return 0
    recorded = training_digests(cfg["checkpoint"])
    return sum(digest in recorded for digest in file_digests(paths, workers)) if recorded else 0



