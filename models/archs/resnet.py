"""ResNet and ResNeXt architectures of NVIDIA's and Facebook's checkpoints, built with timm.

timm's ``ResNet`` uses torchvision's parameter names (``conv1``, ``layer1.0.bn2``, ``fc``), which
are also the names in NVIDIA's NGC files and Facebook's semi-supervised files. NVIDIA's
SE-ResNeXt differs in one respect: its squeeze-excitation (a fixed 16-channel bottleneck
applied to the block output before the residual sum) is stored as ``<block>.squeeze.squeeze``
and ``<block>.squeeze.expand`` (Linear or 1x1 conv), which ``nvidia_se_key`` renames to timm's
``<block>.se.fc1`` / ``<block>.se.fc2``.
"""

from __future__ import annotations

from functools import partial

from timm.layers import SEModule
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from .timm_api import checked_global_pool

NVIDIA_SE_CHANNELS = 16

_ARCHITECTURES = {
    "resnet18": {"block": BasicBlock, "layers": (2, 2, 2, 2)},
    "resnet50": {"block": Bottleneck, "layers": (3, 4, 6, 3)},
    "resnext50_32x4d": {"block": Bottleneck, "layers": (3, 4, 6, 3), "cardinality": 32, "base_width": 4},
    "resnext101_32x4d": {"block": Bottleneck, "layers": (3, 4, 23, 3), "cardinality": 32, "base_width": 4},
    "resnext101_32x8d": {"block": Bottleneck, "layers": (3, 4, 23, 3), "cardinality": 32, "base_width": 8},
    "resnext101_32x16d": {"block": Bottleneck, "layers": (3, 4, 23, 3), "cardinality": 32, "base_width": 16},
    "se_resnext101_32x4d": {
        "block": Bottleneck, "layers": (3, 4, 23, 3), "cardinality": 32, "base_width": 4,
        "block_args": {"attn_layer": partial(SEModule, rd_channels=NVIDIA_SE_CHANNELS)},
    },
}


def build_resnet(architecture: str, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, global_pool: str = "avg") -> ResNet:
    """A randomly initialised timm ``ResNet`` of ``architecture`` (a key of ``_ARCHITECTURES``);
    ``global_pool`` is timm's (its pool types; "" with ``num_classes=0``: the model returns the feature map)."""
    return ResNet(**_ARCHITECTURES[architecture], num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                  drop_path_rate=drop_path_rate, global_pool=checked_global_pool(global_pool, num_classes))


def nvidia_se_key(key: str) -> str:
    """NVIDIA's SE-ResNeXt checkpoint key to our (timm's) key; other keys are unchanged."""
    return key.replace(".squeeze.squeeze.", ".se.fc1.").replace(".squeeze.expand.", ".se.fc2.")
