"""NVIDIA's GPUNet architectures, built from the JSON configs in ``configs/``.

The module tree reproduces the names of NVIDIA's builder, spaces and colons included
(``network.head: 2``, ``network.stage: 1 layer3``, ``network. layer15``, ``network.tail:``), so
NVIDIA's checkpoints load with ``load_state_dict(strict=True)`` and no key translation.
"""

from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

from ...errors import InvalidArgumentError
from ..timm_api import (
    Step,
    TimmApi,
    checked_in_chans,
    checked_num_classes,
    global_pool_layer,
)
from .blocks import (
    ClassifierTail,
    ConvBnAct,
    Epilogue,
    Prologue,
    edge_residual,
    inverted_residual,
)
from .config import LayerConfig, config_is_distilled, load_config
from .distilled_blocks import (
    EpilogueD,
    FusedInvertedResidualD,
    InvertedResidualD,
    PrologueD,
    PrologueLargeD,
)
from .types import (
    GPUNET_TYPES,
    GPUNetType,
    canonical_gpunet_type,
)

# Stochastic depth of the plain family grows linearly with depth up to this rate (training only).
DROP_PATH_RATE = 0.2


def check_gpunet_input(x: torch.Tensor, in_chans: int) -> None:
    """InvalidArgumentError unless ``x`` is a floating-point ``(N, in_chans, H, W)`` tensor.

    A leaf of ``torch.fx`` traces (``torch.fx.wrap``): a traced GPUNet checks its real input too; it
    scripts, so a scripted GPUNet checks it as well.
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(f"GPUNet input must be a floating-point tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InvalidArgumentError(f"GPUNet input must be a floating-point tensor, got a {x.dtype} tensor")
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise InvalidArgumentError(f"GPUNet input must have shape (N, {in_chans}, H, W), got {list(x.shape)}")


torch.fx.wrap("check_gpunet_input")


class GPUNet(TimmApi, nn.Module):
    """A GPUNet: ``network`` is the sequence of layers named as in NVIDIA's checkpoints, the last one
    its :class:`ClassifierTail`; timm's feature and head API (:class:`TimmApi`) splits it.

    ``forward`` takes a float batch ``(N, in_chans, H, W)`` in the dtype of the model's parameters (the
    hub's entrypoint adds the forward pre-hook that casts a batch of any floating dtype, as for every
    model) and returns logits ``(N, num_classes)`` in that dtype (pre-logits when ``num_classes`` is 0).
    """

    def __init__(self, model_type: str, network: nn.Sequential, feature_info: list[dict[str, Any]],
                 num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.model_type = model_type
        self.network = network
        self.feature_info = feature_info
        self.num_features = network[-1].num_features
        self.head_hidden_size = network[-1].head_hidden_size
        self.num_classes = num_classes
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_gpunet_input(x, self.in_chans)
        return self.network(x)

    def _set_global_pool(self, pool_type: str) -> None:
        """The tail's pooling becomes ``pool_type``'s; with "" neither pooling nor flattening: the layers after
        it (the distilled types' 1x1 convolution) then act on every position of the feature map."""
        tail = self.network[-1]
        tail.net[ClassifierTail.FEATURE_LAYERS] = global_pool_layer(pool_type)
        tail.net[tail.flatten_layer] = nn.Flatten() if pool_type else nn.Identity()
        self.global_pool = pool_type

    def _tail_name(self) -> str:
        return f"{self._children('network')[-1][0]}.net"

    def _classifier_name(self) -> str:
        return f"{self._tail_name()}.{len(self.network[-1].net) - 1}"

    def _feature_steps(self) -> list[Step]:
        return self._children("network")[:-1] + self._children(self._tail_name())[:ClassifierTail.FEATURE_LAYERS]

    def _pre_logits_steps(self) -> list[Step]:
        return self._children(self._tail_name())[ClassifierTail.FEATURE_LAYERS:-1]


def _layer_of(model_type: str, index: int) -> tuple[str, nn.Module]:
    """Name and module (on the meta device: for its layout only) of config entry ``index`` of ``model_type``."""
    gpunet_type = GPUNET_TYPES[model_type]
    config = load_config(gpunet_type.config_file)
    index %= len(config)
    with torch.device("meta"):
        if config_is_distilled(gpunet_type.config_file):
            return _distilled_layer(index, config[index], num_classes=1)
        return _plain_layer(index, len(config) - 1, config[index], num_classes=1)


@cache
def gpunet_first_conv(model_type: str) -> str:
    """``pretrained_cfg["first_conv"]`` of ``model_type``: the qualified name of its stem's convolution."""
    name, _ = _layer_of(model_type, 1)
    return f"network.{name}.net.0"


def _plain_layer(index: int, count: int, layer: LayerConfig, num_classes: int) -> tuple[str, nn.Module]:
    """Name and module of config entry ``index`` (the data layer being 0) of the plain family."""
    kind = layer["layer_type"]
    ordinal = index + 1
    if kind == "head":
        act = layer.get("act", "swish")
        return f"head: {ordinal}", Prologue(layer["num_in_channels"], layer["num_out_channels"], act)
    if kind == "tail":
        return f" layer{ordinal}", Epilogue(
            layer["num_in_channels"], layer["num_out_channels"], num_classes
        )
    name = f"stage: {layer['stage']} layer{ordinal}"
    args = (layer["num_in_channels"], layer["num_out_channels"], layer["kernel_size"], layer["stride"])
    if kind == "conv":
        return name, ConvBnAct(*args, act_layer=layer["act"])
    block: Callable[..., nn.Module] = {"irb": inverted_residual, "fused_irb": edge_residual}[kind]
    return name, block(
        *args,
        exp_ratio=layer["expansion"],
        use_se=layer["use_se"],
        act_layer=layer["act"],
        drop_path_rate=DROP_PATH_RATE * index / count,
    )


def _distilled_layer(index: int, layer: LayerConfig, num_classes: int) -> tuple[str, nn.Module]:
    """Name and module of config entry ``index`` (the data layer being 0) of the distilled family."""
    kind = layer["layer_type"]
    channels = (layer["num_in_channels"], layer["num_out_channels"])
    if kind == "head":
        return "head:", PrologueD(*channels)
    if kind == "head_large":
        return "head:", PrologueLargeD(*channels)
    if kind == "tail":
        return "tail:", EpilogueD(*channels, num_classes)
    name = f"stage: {layer['stage']} {kind}{index + 1}"
    args = (*channels, layer["kernel_size"], layer["stride"], layer["expansion"])
    if kind == "irb":
        return name, InvertedResidualD(*args, groups=layer["groups"])
    return name, FusedInvertedResidualD(*args)


_LAYER_TYPES = {
    False: {"head", "conv", "fused_irb", "irb", "tail"},
    True: {"head", "head_large", "irb", "fused_irb", "tail"},
}


def _feature_info(names: list[str], layers: list[LayerConfig]) -> list[dict[str, Any]]:
    """timm's ``feature_info`` of the layers before the tail: the output of the last layer at each stride."""
    strides = [2 if layer["layer_type"] in ("head", "head_large") else layer["stride"] for layer in layers]
    info, reduction = [], 1
    for index, (name, layer) in enumerate(zip(names, layers)):
        reduction *= strides[index]
        if index + 1 == len(layers) or strides[index + 1] > 1:
            info.append({"num_chs": layer["num_out_channels"], "reduction": reduction, "module": f"network.{name}"})
    return info


def _build_network(gpunet_type: GPUNetType, num_classes: int,
                   in_chans: int) -> tuple[nn.Sequential, list[dict[str, Any]]]:
    """The ``network`` of ``gpunet_type`` (its first layer taking ``in_chans`` channels) and its ``feature_info``."""
    config = load_config(gpunet_type.config_file)
    if config[-1]["layer_type"] != "tail":
        raise ValueError(f"GPUNet config {gpunet_type.config_file}: the last layer must be the 'tail'")
    config[1]["num_in_channels"] = in_chans
    distilled = config_is_distilled(gpunet_type.config_file)
    network = nn.Sequential()
    for index, layer in enumerate(config[1:], start=1):
        if layer["layer_type"] not in _LAYER_TYPES[distilled]:
            raise ValueError(
                f"GPUNet config {gpunet_type.config_file}, layer {index}: unknown layer_type "
                f"{layer['layer_type']!r} for the {'distilled' if distilled else 'plain'} family"
            )
        if distilled:
            name, module = _distilled_layer(index, layer, num_classes)
        else:
            name, module = _plain_layer(index, len(config) - 1, layer, num_classes)
        network.add_module(name, module)
    return network, _feature_info([name for name, _ in network.named_children()][:-1], config[1:-1])


def build_gpunet(model_type: str, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg") -> GPUNet:
    """Build the GPUNet ``model_type`` (see :func:`canonical_gpunet_type`) with fresh weights.

    ``num_classes`` sets the width of the classifier (NVIDIA's checkpoints have 1000; 0: none, the
    model returns its pre-logits), ``in_chans`` the channels of the input (NVIDIA's: 3), ``global_pool``
    the tail's pooling (timm's pool types; "" with ``num_classes=0``: the model returns the feature map,
    after the distilled types' 1x1 convolution). The model is returned in training mode, in float32.
    """
    canonical = canonical_gpunet_type(model_type)
    checked_num_classes(num_classes)
    network, feature_info = _build_network(GPUNET_TYPES[canonical], num_classes, checked_in_chans(in_chans))
    model = GPUNet(canonical, network, feature_info, num_classes, in_chans)
    model._head_for(num_classes, global_pool)
    return model
