"""NVIDIA's GPUNet architectures, built from the JSON configs in ``configs/``.

The module tree reproduces the names of NVIDIA's builder, spaces and colons included
(``network.head: 2``, ``network.stage: 1 layer3``, ``network. layer15``, ``network.tail:``), so
NVIDIA's checkpoints load with ``load_state_dict(strict=True)`` and no key translation.
"""

from collections.abc import Callable

import torch
from torch import nn

from ...errors import InvalidArgumentError
from ...runtime.input_cast import cast_inputs_to_model
from .blocks import (
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

__all__ = [
    "GPUNET_TYPES",
    "GPUNet",
    "GPUNetType",
    "build_gpunet",
    "canonical_gpunet_type",
    "gpunet_cfg",
]

# Stochastic depth of the plain family grows linearly with depth up to this rate (training only).
DROP_PATH_RATE = 0.2


class GPUNet(nn.Module):
    """A GPUNet: ``network`` is the sequence of layers named as in NVIDIA's checkpoints.

    ``forward`` takes a float batch ``(N, 3, H, W)`` of any floating dtype (a forward pre-hook,
    :func:`cast_inputs_to_model`, casts it to the dtype of the model's parameters) and returns
    logits ``(N, num_classes)`` in that dtype.
    """

    def __init__(self, model_type: str, network: nn.Sequential, classifier_name: str) -> None:
        super().__init__()
        self.model_type = model_type
        self.resolution = GPUNET_TYPES[model_type].resolution
        self.network = network
        self.classifier_name = classifier_name
        cast_inputs_to_model(self)

    def get_classifier(self) -> nn.Linear:
        """The final linear layer (the only part that depends on ``num_classes``)."""
        return self.get_submodule(self.classifier_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            kind = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidArgumentError(f"GPUNet input must be a floating-point tensor, got {kind}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidArgumentError(
                f"GPUNet input must have shape (N, 3, H, W), got {tuple(x.shape)}"
            )
        return self.network(x)


def gpunet_cfg(model_type: str) -> dict[str, object]:
    """The preprocessing NVIDIA evaluated ``model_type`` with: its own resolution, no crop margin, bicubic."""
    size = GPUNET_TYPES[model_type].resolution
    return {"input_size": (3, size, size), "crop_pct": 1.0, "interpolation": "bicubic",
            "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


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


def _build_network(gpunet_type: GPUNetType, num_classes: int) -> tuple[nn.Sequential, str]:
    """The ``network`` of ``gpunet_type`` and the qualified name of its classifier."""
    config = load_config(gpunet_type.config_file)
    distilled = config_is_distilled(gpunet_type.config_file)
    network = nn.Sequential()
    classifier_name = ""
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
        if layer["layer_type"] == "tail":
            classifier_name = f"network.{name}.net.{module.CLASSIFIER_INDEX}"
    return network, classifier_name


def build_gpunet(model_type: str, num_classes: int = 1000) -> GPUNet:
    """Build the GPUNet ``model_type`` (see :func:`canonical_gpunet_type`) with fresh weights.

    ``num_classes`` sets the width of the classifier (NVIDIA's checkpoints have 1000), which
    :meth:`GPUNet.get_classifier` returns. The model is returned in training mode, in float32.
    """
    canonical = canonical_gpunet_type(model_type)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidArgumentError(f"num_classes must be a positive int, got {num_classes!r}")
    network, classifier_name = _build_network(GPUNET_TYPES[canonical], num_classes)
    return GPUNet(canonical, network, classifier_name)
