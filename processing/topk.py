"""NVIDIA's ``pick_n_best``: the n most probable labels of each sample, as ``(label, "xx.x%")``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .errors import ProcessingArgumentError
from .labels import default_class_names

Prediction = list[tuple[str, str]]

PROBABILITY_TOLERANCE = 1e-3
"""How far outside [0, 1] a score may lie (rounding of half precision) and still read as a probability."""


class NotProbabilitiesWarning(UserWarning):
    """``pick_n_best`` was given scores outside [0, 1] (logits, say): its percentages mean nothing."""


def pick_n_best(predictions: torch.Tensor, n: int = 5, labels: Sequence[str] | None = None,
                verbose: bool = True) -> list[Prediction]:
    """Top-``n`` of each row of ``predictions`` (N x classes, or one 1-D sample), printed as NVIDIA's.

    Values are shown as given, as percentages: apply softmax first (logits, or any score outside
    [0, 1], give a :class:`NotProbabilitiesWarning`); ``n`` is clamped to the number of classes;
    ``labels`` names the classes of a fine-tuned head (default: ImageNet-1k's 1000).
    """
    scores = torch.as_tensor(predictions).detach().to("cpu", torch.float32)
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    if scores.dim() != 2 or scores.shape[1] == 0:
        raise ProcessingArgumentError(f"predictions of shape {tuple(scores.shape)}: expected (N, classes) or (classes,)")
    classes = scores.shape[1]
    names = list(labels) if labels is not None else list(default_class_names(classes))
    if len(names) != classes:
        raise ProcessingArgumentError(f"labels has {len(names)} names for predictions of {classes} classes")
    _warn_unless_probabilities(scores)
    values, indices = scores.topk(max(0, min(int(n), classes)), dim=1)
    results = []
    for sample, (row_values, row_indices) in enumerate(zip(values.tolist(), indices.tolist(), strict=True)):
        result = [(f"{names[index]}", f"{100 * value:.1f}%") for value, index in zip(row_values, row_indices, strict=True)]
        if verbose:
            print(f"sample {sample}: {result}")
        results.append(result)
    return results


def _warn_unless_probabilities(scores: torch.Tensor) -> None:
    """Warn when a score is not finite or lies outside [0, 1]: the rows are not probabilities."""
    finite = scores.isfinite()
    low = float(scores[finite].min()) if finite.any() else 0.0
    high = float(scores[finite].max()) if finite.any() else 0.0
    if finite.all() and -PROBABILITY_TOLERANCE <= low and high <= 1 + PROBABILITY_TOLERANCE:
        return
    found = f"values from {low:.4g} to {high:.4g}" + ("" if finite.all() else ", some not finite")
    warnings.warn(f"pick_n_best: the predictions are not probabilities ({found}), so their percentages "
                  "mean nothing; pass torch.softmax(logits, dim=1)", NotProbabilitiesWarning, stacklevel=4)
