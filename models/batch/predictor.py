"""A model's top-k predictions on preprocessed batches, as result rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...processing.labels import class_names
from ...processing.transforms import PREPROCESS_KEYS, model_config
from ..errors import InvalidArgumentError
from .schema import error_row


def pretrained_cfg(model: nn.Module) -> Mapping[str, Any]:
    """The model's ``pretrained_cfg`` (also through an optimized model's wrapper)."""
    cfg = model_config(model)
    if cfg is None:
        raise InvalidArgumentError(f"{type(model).__name__} has no pretrained_cfg: not a hub model")
    return cfg


def weights_name(cfg: Mapping[str, Any]) -> str:
    """The weights id of the manifest, else the checkpoint file, else '' (random initialisation)."""
    return cfg.get("id") or cfg.get("checkpoint") or ""


class Predictor:
    """Runs ``model`` (in eval mode, under inference_mode) and keeps the ``top_k`` classes of each image.

    ``pad_to``: batches smaller than this are padded with zeros (a compiled model with static
    shapes then never recompiles for the last, short batch); the padding's outputs are dropped.
    """

    def __init__(self, model: nn.Module, top_k: int = 5, pad_to: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.model = model.eval()
        cfg = pretrained_cfg(model)
        self.preprocess = {key: cfg[key] for key in PREPROCESS_KEYS}
        self.entrypoint = str(cfg.get("entrypoint") or "")
        self.weights = weights_name(cfg)
        self.top_k = min(top_k, int(cfg["num_classes"]))
        self.pad_to = pad_to
        self.device = torch.device(device)
        self.labels = list(class_names(cfg))

    def predict(self, paths: Sequence[str], images: torch.Tensor) -> list[dict[str, Any]]:
        """The rows of ``paths``, whose preprocessed images are ``images`` (N x C x H x W)."""
        if not paths:
            return []
        batch = images.to(self.device)
        if self.pad_to is not None and len(batch) < self.pad_to:
            batch = torch.cat([batch, batch.new_zeros(self.pad_to - len(batch), *batch.shape[1:])])
        with torch.inference_mode():
            probabilities = self.model(batch)[:len(paths)].float().softmax(dim=1)
            values, indices = probabilities.topk(self.top_k, dim=1)
        return [{"path": path, "labels": [self.labels[index] for index in row_indices],
                 "class_indices": row_indices, "probabilities": row_values, "error": "",
                 "entrypoint": self.entrypoint, "weights": self.weights}
                for path, row_values, row_indices in zip(paths, values.tolist(), indices.tolist(), strict=True)]

    def classify(self, paths: Sequence[str], decoded: Sequence[torch.Tensor | str]) -> list[dict[str, Any]]:
        """Rows in input order: predictions for the decoded images, error rows for the failed ones
        (``decoded[i]`` is an image tensor or the text of the error that stopped it)."""
        good = [index for index, item in enumerate(decoded) if isinstance(item, torch.Tensor)]
        # decoded on the CPU or on the GPU (hybrid decoding): all go to the model's device
        images = torch.stack([decoded[index].to(self.device, non_blocking=True) for index in good]) if good \
            else torch.empty(0)
        rows = dict(zip(good, self.predict([paths[index] for index in good], images), strict=True))
        return [rows[index] if index in rows else error_row(paths[index], decoded[index], self.entrypoint, self.weights)
                for index in range(len(paths))]
