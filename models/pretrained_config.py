"""A model's ``pretrained_cfg``, built in one typed place.

:class:`ModelPretrainedCfg` has the fields of timm's ``PretrainedCfg`` that apply to our models, under
timm's names, and the hub's own (``id``, ``metrics``, ``entrypoint``, ``model_type``, ``checkpoint``);
``to_dict()`` is the plain dict that models carry as ``pretrained_cfg`` (and, as timm's models do, as
its alias ``default_cfg``) and that timm's ``resolve_data_config`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

import torch
from torch import nn

from .archs.timm_api import classifier_name
from .registry import ModelSpec
from .weights.manifest import WeightsEntry

_KEPT_WHEN_NONE = frozenset({"pool_size", "first_conv", "classifier",  # as timm's filter_pretrained_cfg
                             "id", "metrics", "model_type", "checkpoint"})  # the hub's, always present
_NOT_FOR_FEATURES = ("num_classes", "classifier", "label_names")
"""What timm's ``pretrained_cfg_for_features`` removes for a ``features_only`` model (and its class names)."""


@dataclass(frozen=True)
class ModelPretrainedCfg:
    """timm's ``PretrainedCfg`` fields of one model, and the hub's own.

    Preprocessing (``input_size`` ... ``std``, ``crop_mode``) is that of the weights (or of the
    architecture's default weights for an untrained model). ``pool_size`` is the size of
    ``forward_features``' map for an ``input_size`` input; ``first_conv`` and ``classifier`` name the
    input convolution and the classifier. ``url``, ``hf_hub_id`` and ``tag`` locate the manifest weights
    that were loaded; ``license`` and ``description`` are those of the published weights that describe
    the model. ``id`` is the manifest id of the loaded weights, ``checkpoint`` their local file.
    """

    input_size: tuple[int, int, int]
    crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    classifier: str
    id: str | None
    metrics: dict[str, Any] | None
    entrypoint: str
    model_type: str | None
    checkpoint: str | None
    pool_size: tuple[int, int]
    first_conv: str
    architecture: str
    crop_mode: str = "center"
    fixed_input_size: bool = False
    tag: str | None = None
    url: str | None = None
    hf_hub_id: str | None = None
    license: str | None = None
    description: str | None = None
    label_names: Sequence[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain dict of the fields, without timm's optional fields that are None."""
        return {key: value for key, value in asdict(self).items() if value is not None or key in _KEPT_WHEN_NONE}


def pretrained_cfg_of(model: nn.Module, spec: ModelSpec, *, architecture: str, entrypoint: str,
                      model_type: str | None, preprocessing: dict[str, Any], loaded: WeightsEntry | None,
                      published: WeightsEntry | None, checkpoint: str | None,
                      label_names: Sequence[str] | None = None) -> ModelPretrainedCfg:
    """The ``pretrained_cfg`` of ``model``, built by ``spec`` as ``entrypoint`` (``architecture``: its name
    in the registry), preprocessed as ``preprocessing`` says; ``loaded`` is the manifest entry of the
    weights loaded from ``checkpoint``, ``published`` the one whose license and figures describe it."""
    first_conv = spec.first_conv_name(model_type)
    classifier = classifier_name(model)
    input_size = _sequence(preprocessing["input_size"])
    return ModelPretrainedCfg(
        input_size=input_size, crop_pct=preprocessing["crop_pct"], interpolation=preprocessing["interpolation"],
        mean=_sequence(preprocessing["mean"]), std=_sequence(preprocessing["std"]),
        num_classes=getattr(model.get_submodule(classifier), "out_features", 0), classifier=classifier,
        id=loaded.id if loaded else None,
        metrics=published.metrics if published else None, entrypoint=entrypoint, model_type=model_type,
        checkpoint=checkpoint, pool_size=feature_map_size(model, first_conv, input_size), first_conv=first_conv,
        architecture=architecture, fixed_input_size=spec.fixed_input_size,
        tag=loaded.id.removeprefix(f"{loaded.entrypoint}.") if loaded else None,
        url=loaded.urls[0] if loaded and loaded.urls else None, hf_hub_id=loaded.hf_hub_id if loaded else None,
        license=published.license if published else None,
        description=(published.description or None) if published else None, label_names=label_names)


def feature_map_size(model: nn.Module, first_conv: str, input_size: tuple[int, ...]) -> tuple[int, int]:
    """Height and width of ``model.forward_features`` for an input of ``input_size`` (timm's ``pool_size``),
    computed on the meta device: shapes only, no arithmetic, the model's own tensors untouched."""
    conv = model.get_submodule(first_conv)
    tensors = {f"model.{name}": tensor.to("meta")
               for name, tensor in chain(model.named_parameters(), model.named_buffers())}
    x = torch.empty(1, conv.in_channels, *input_size[1:], dtype=conv.weight.dtype, device="meta")
    training = {module: module.training for module in model.modules()}
    model.eval()  # a batch of one: in training, BatchNorm would refuse a 1x1 map
    try:
        with torch.no_grad():
            features = torch.func.functional_call(_ForwardFeatures(model), tensors, (x,))
    finally:
        for module, mode in training.items():
            module.training = mode
    return tuple(features.shape[-2:])


class _ForwardFeatures(nn.Module):
    """``model.forward_features`` as a module's ``forward``, for ``torch.func.functional_call``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def features_pretrained_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``pretrained_cfg`` of a model's ``features_only`` extractor: as timm's, without the head's fields."""
    return {key: value for key, value in cfg.items() if key not in _NOT_FOR_FEATURES}


def set_pretrained_cfg(model: nn.Module, cfg: dict[str, Any]) -> None:
    """``model.pretrained_cfg = cfg``, and ``model.default_cfg``, timm's alias of it (the same dict)."""
    model.pretrained_cfg = model.default_cfg = cfg


def update_pretrained_cfg(model: nn.Module, **changes: Any) -> None:
    """``model``'s ``pretrained_cfg`` with ``changes`` (timm's field names); a new ``input_size`` gives the
    model's ``pool_size`` for it."""
    cfg = dict(model.pretrained_cfg)
    if "input_size" in changes and "pool_size" in cfg:
        changes["pool_size"] = feature_map_size(model, cfg["first_conv"], changes["input_size"])
    set_pretrained_cfg(model, {**cfg, **changes})


def _sequence(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
