"""timm's feature and head API on every architecture.

timm's own models (the ResNet family, the EfficientNets) have it already. :class:`TimmApi` gives
it, with timm's names and behaviour, to the models that are not timm's (torchvision's classic
CNNs, LeNet-5, GPUNet) without changing their modules or state-dict keys; :func:`features_only`
wraps any of them as timm's ``features_only=True`` does, in timm's own :class:`FeatureGetterNet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from timm.layers import SelectAdaptivePool2d
from timm.models._features import FeatureGetterNet, feature_take_indices
from torch import nn

from ..errors import InvalidArgumentError

Step = tuple[str | None, Callable[[torch.Tensor], torch.Tensor]]
"""One step of a forward pass: the qualified name of the module that runs it (None: a function) and the callable."""

FLATTEN: Step = (None, partial(torch.flatten, start_dim=1))

OutIndices = int | Sequence[int] | None


POOL_TYPES = ("", "avg", "max", "avgmax", "catavgmax", "fast", "fastavg", "fastmax", "fastavgmax", "fastcatavgmax")
"""timm's ``global_pool`` values (``SelectAdaptivePool2d``): "" keeps the feature map unpooled."""


def checked_global_pool(global_pool: Any, num_classes: int, supported: Sequence[str] = POOL_TYPES) -> str:
    """``global_pool`` if it is one of ``supported`` (timm's pool types, any case) and, when it is "" (no
    pooling: the model returns the feature map), ``num_classes`` is 0; else InvalidArgumentError."""
    if not isinstance(global_pool, str) or global_pool.lower() not in supported:
        raise InvalidArgumentError(f"global_pool={global_pool!r} is not a pooling this model supports: one of "
                                   f"{', '.join(map(repr, supported))}")
    if not global_pool and num_classes:
        raise InvalidArgumentError(f"global_pool='' keeps the feature map unpooled, which no classifier takes: "
                                   f"it needs num_classes=0, got num_classes={num_classes}")
    return global_pool.lower()


GLOBAL_HEAD_POOL_TYPES = tuple(pool for pool in POOL_TYPES if not pool.endswith("catavgmax"))
"""The pool types of a head whose classifier takes the feature map's width (concatenating avg and max doubles it)."""


def global_pool_layer(pool_type: str) -> nn.Module:
    """The pooling layer of ``pool_type`` to (N, C, 1, 1): torchvision's ``AdaptiveAvgPool2d`` for "avg",
    else timm's ``SelectAdaptivePool2d`` (an identity for "")."""
    return nn.AdaptiveAvgPool2d((1, 1)) if pool_type == "avg" else SelectAdaptivePool2d(pool_type=pool_type)


def checked_in_chans(in_chans: Any) -> int:
    """``in_chans`` if it is a positive int (the input's channels), else InvalidArgumentError."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise InvalidArgumentError(f"in_chans must be a positive int, got {in_chans!r}")
    return in_chans


def checked_num_classes(num_classes: Any) -> int:
    """``num_classes`` if it is an int >= 0 (0: no classifier, the model returns pre-logits), else InvalidArgumentError."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise InvalidArgumentError(f"num_classes must be an int >= 0 (0: no classifier), got {num_classes!r}")
    return num_classes


def classifier_name(model: nn.Module) -> str:
    """The qualified name of ``model``'s classifier (timm's ``pretrained_cfg["classifier"]``): that of the
    module its ``get_classifier()`` returns, an ``nn.Identity`` when ``num_classes`` is 0. The architecture
    (timm's models, and :class:`TimmApi`'s ``_classifier_name``) is the one place that says it."""
    classifier = model.get_classifier()
    for name, module in model.named_modules():
        if module is classifier and name:
            return name
    raise LookupError(f"{type(model).__name__}.get_classifier() returns {type(classifier).__name__}, "
                      "which is none of the model's submodules")


class TimmApi:
    """Mixin for an ``nn.Module``: timm's ``forward_features``, ``forward_head``, ``get_classifier``,
    ``reset_classifier``, ``forward_intermediates`` and ``prune_intermediate_layers``.

    The model sets ``feature_info`` (timm's dicts ``num_chs``, ``reduction``, ``module``, one per
    stage end), ``num_features`` (channels of ``forward_features``), ``head_hidden_size`` (width of
    the pre-logits) and ``num_classes``, and defines ``_feature_steps`` (the forward pass to the last
    feature map), ``_pre_logits_steps`` (from there to the classifier's input) and
    ``_classifier_name`` (the qualified name of the classifier). Its ``forward`` stays its own.
    Its ``global_pool`` is the pool type of its head (timm's names), one of ``POOL_TYPES``, set by
    ``_set_global_pool``; "" is none: then ``forward`` without a classifier returns the feature map.
    """

    POOL_TYPES: tuple[str, ...] = GLOBAL_HEAD_POOL_TYPES

    def _set_global_pool(self, pool_type: str) -> None:
        raise NotImplementedError

    def _feature_steps(self) -> list[Step]:
        raise NotImplementedError

    def _pre_logits_steps(self) -> list[Step]:
        raise NotImplementedError

    def _classifier_name(self) -> str:
        raise NotImplementedError

    def _head_for(self, num_classes: int, global_pool: str) -> None:
        """Record ``num_classes`` and set the pooling ``global_pool``; the model was built with a placeholder
        head of 1 for 0 classes: then the head becomes an identity."""
        self.num_classes = num_classes
        self._set_global_pool(checked_global_pool(global_pool, num_classes, self.POOL_TYPES))
        if num_classes == 0:
            self.reset_classifier(0, global_pool)

    def _named(self, *names: str) -> list[Step]:
        """The steps that run the submodules ``names``, in that order."""
        return [(name, self.get_submodule(name)) for name in names]

    def _children(self, name: str) -> list[Step]:
        """The steps that run the children of the ``nn.Sequential`` ``name``, in order."""
        return [(f"{name}.{child}", module) for child, module in self.get_submodule(name).named_children()]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(N, num_features, H, W)``, before pooling."""
        for _, step in self._feature_steps():
            x = step(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits of the feature map ``x``; with ``pre_logits=True`` the classifier's input ``(N, head_hidden_size)``."""
        for _, step in self._pre_logits_steps():
            x = step(x)
        return x if pre_logits else self.get_classifier()(x)

    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """The classifier (``nn.Identity`` when ``num_classes`` is 0), or its qualified name."""
        name = self._classifier_name()
        return name if name_only else self.get_submodule(name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier of ``num_classes`` outputs; 0 makes it an identity (the model returns pre-logits).

        ``global_pool`` (timm's pool types; None: the current one, as timm's models) sets the pooling
        before it; "" removes it, and with ``num_classes=0`` the model returns its unpooled feature map.
        """
        checked_num_classes(num_classes)
        pool_type = self.global_pool if global_pool is None else global_pool
        self._set_global_pool(checked_global_pool(pool_type, num_classes, self.POOL_TYPES))
        reference = next(self.parameters())
        head = (nn.Linear(self.head_hidden_size, num_classes, device=reference.device, dtype=reference.dtype)
                if num_classes else nn.Identity())
        self.set_submodule(self._classifier_name(), head.train(self.training))
        self.num_classes = num_classes

    def forward_intermediates(self, x: torch.Tensor, indices: OutIndices = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the feature maps of ``feature_info[indices]`` (int: the last n;
        None: all), with the last feature map unless ``intermediates_only``. There is no final norm."""
        if output_fmt != "NCHW":
            raise InvalidArgumentError(f"output_fmt={output_fmt!r}: only 'NCHW' is supported")
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        taps = {info["module"]: index for index, info in enumerate(self.feature_info)}
        intermediates = []
        for name, step in self._feature_steps():
            x = step(x)
            index = taps.get(name)
            if index in take_indices:
                intermediates.append(x)
            if index == max_index and (stop_early or intermediates_only):
                break
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(self, indices: OutIndices = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """timm's ``prune_intermediate_layers``: the layers after ``feature_info[max(indices)]`` become
        identities, and so does the head (with the features truncated, or ``prune_head``)."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        names = [name for name, _ in self._feature_steps()]
        last = names.index(self.feature_info[max_index]["module"])
        for name in names[last + 1:]:
            if name is not None:
                self.set_submodule(name, nn.Identity())
        if prune_head or last < len(names) - 1:
            self.reset_classifier(0)
            for name, _ in self._pre_logits_steps():
                if name is not None:
                    self.set_submodule(name, nn.Identity())
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        return take_indices


def sequential_feature_info(features: nn.Sequential, prefix: str) -> list[dict[str, Any]]:
    """timm's ``feature_info`` of a plain stack of convolutions and poolings (as timm's VGG): the output
    of the layer before each pooling, and of the last layer."""
    info: list[dict[str, Any]] = []
    channels, reduction = 0, 1
    layers = list(features.named_children())
    for position, (name, layer) in enumerate(layers):
        if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) and position:
            info.append({"num_chs": channels, "reduction": reduction, "module": f"{prefix}.{layers[position - 1][0]}"})
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            stride = layer.stride
            reduction *= stride[0] if isinstance(stride, tuple) else stride
    info.append({"num_chs": channels, "reduction": reduction, "module": f"{prefix}.{layers[-1][0]}"})
    return info


TIMM_OUT_INDICES = (0, 1, 2, 3, 4)
"""timm's default ``out_indices`` of ``features_only``."""


def features_only_model(model: nn.Module, out_indices: OutIndices = None) -> FeatureGetterNet:
    """``model`` as timm's ``features_only=True`` model: called, it returns the list of feature maps
    ``out_indices`` (timm's default: the first five stage ends), described by its ``feature_info``
    (timm's :class:`FeatureInfo`: ``channels()``, ``reduction()``, ``module_name()``).

    The layers after the last feature map and the head are removed from ``model``.
    """
    count = len(model.feature_info)
    if out_indices is None:
        out_indices = TIMM_OUT_INDICES[:count]
    elif isinstance(out_indices, bool) or not (isinstance(out_indices, int) or (
            isinstance(out_indices, Sequence) and all(isinstance(i, int) and not isinstance(i, bool)
                                                      for i in out_indices))):
        raise InvalidArgumentError(f"out_indices={out_indices!r} must be an int (the last n feature maps) "
                                   "or a sequence of feature-map indices")
    else:
        wanted = range(1, count + 1) if isinstance(out_indices, int) else range(-count, count)
        values = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        if not values or any(value not in wanted for value in values):
            raise InvalidArgumentError(f"out_indices={out_indices!r} is out of range: the model has {count} "
                                       f"feature maps (reductions {[i['reduction'] for i in model.feature_info]})")
        out_indices = out_indices if isinstance(out_indices, int) else tuple(out_indices)
    return FeatureGetterNet(model, out_indices=out_indices)
