"""NVIDIA's ``pick_n_best``: the n most probable labels of each sample, as ``(label, "xx.x%")``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import ProcessingArgumentError
from .labels import imagenet_labels

Prediction = list[tuple[str, str]]


def pick_n_best(predictions: torch.Tensor, n: int = 5, labels: Sequence[str] | None = None,
                verbose: bool = True) -> list[Prediction]:
    """Top-``n`` of each row of ``predictions`` (N x classes, or one 1-D sample), printed as NVIDIA's.

    Values are shown as given (apply softmax first for probabilities); ``n`` is clamped to the number
    of classes; ``labels`` names the classes of a fine-tuned head (default: ImageNet-1k's 1000).
    """
    scores = torch.as_tensor(predictions).detach().to("cpu", torch.float32)
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    if scores.dim() != 2 or scores.shape[1] == 0:
        raise ProcessingArgumentError(f"predictions of shape {tuple(scores.shape)}: expected (N, classes) or (classes,)")
    classes = scores.shape[1]
    names = list(labels) if labels is not None else (list(imagenet_labels()) if classes == 1000 else None)
    if names is None:
        names = [f"class {index}" for index in range(classes)]
    if len(names) != classes:
        raise ProcessingArgumentError(f"labels has {len(names)} names for predictions of {classes} classes")
    values, indices = scores.topk(max(0, min(int(n), classes)), dim=1)
    results = []
    for sample, (row_values, row_indices) in enumerate(zip(values.tolist(), indices.tolist(), strict=True)):
        result = [(f"{names[index]}", f"{100 * value:.1f}%") for value, index in zip(row_values, row_indices, strict=True)]
        if verbose:
            print(f"sample {sample}: {result}")
        results.append(result)
    return results
