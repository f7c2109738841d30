"""NVIDIA's ``pick_n_best``: the n most probable labels of each sample, as ``(label, "xx.x%")``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .errors import ProcessingArgumentError
from .labels import class_names, default_class_names

Prediction = list[tuple[str, str]]

PROBABILITY_TOLERANCE = 1e-3
"""How far outside [0, 1] a score may lie (rounding of half precision) and still read as a probability."""


class NotProbabilitiesWarning(UserWarning):
    """``pick_n_best`` was given scores outside [0, 1] (logits, say): its percentages mean nothing."""


def pick_n_best(predictions: torch.Tensor, n: int = 5, labels: Sequence[str] | None = None,
                verbose: bool = True, model: Any = None) -> list[Prediction]:
    """Top-``n`` of each row of ``predictions`` (N x classes, or one 1-D sample), printed as NVIDIA's.

    Values are shown as given, as percentages: apply softmax first (logits, or any score outside
    [0, 1], give a :class:`NotProbabilitiesWarning`); ``n`` is clamped to the number of classes;
    ``labels`` names the classes; without it, ``model=`` (anything with a ``pretrained_cfg``, as
    ``prepare_input_from_uri`` takes it) gives its own class names (a fine-tuned checkpoint's);
    without either, a 1000-class head has ImageNet-1k's names and any other ``class <i>``.
    """
    scores = torch.as_tensor(predictions).detach().to("cpu", torch.float32)
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    if scores.dim() != 2 or scores.shape[1] == 0:
        raise ProcessingArgumentError(f"predictions of shape {tuple(scores.shape)}: expected (N, classes) or (classes,)")
    classes = scores.shape[1]
    if labels is not None:
        names, source = list(labels), "labels"
    elif model is not None:
        names, source = list(class_names(_pretrained_cfg(model))), "model.pretrained_cfg"
    else:
        names, source = list(default_class_names(classes)), "labels"
    if len(names) != classes:
        raise ProcessingArgumentError(f"{source} has {len(names)} names for predictions of {classes} classes")
    _warn_unless_probabilities(scores)
    values, indices = scores.topk(max(0, min(int(n), classes)), dim=1)
    results = []
    for sample, (row_values, row_indices) in enumerate(zip(values.tolist(), indices.tolist(), strict=True)):
        result = [(f"{names[index]}", f"{100 * value:.1f}%") for value, index in zip(row_values, row_indices, strict=True)]
        if verbose:
            print(f"sample {sample}: {result}")
        results.append(result)
    return results


def _pretrained_cfg(model: Any) -> Mapping[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping) or "num_classes" not in cfg:
        raise ProcessingArgumentError(f"model={type(model).__name__}: has no pretrained_cfg with num_classes "
                                      "(give a model of this hub or timm, or pass labels=)")
    return cfg


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
