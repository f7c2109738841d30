"""NVIDIA's GPUNet architecture configs, shipped in ``configs/``.

Each config is a JSON list of layer descriptions. The first entry is the ``data`` layer: it holds
the input resolution and whether the model uses the distilled family of layers.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

LayerConfig = dict[str, Any]


@cache
def _read_config(file_name: str) -> tuple[LayerConfig, ...]:
    with open(CONFIG_DIR / file_name, encoding="utf-8") as handle:
        layers = json.load(handle)
    if not layers or layers[0].get("layer_type") != "data":
        raise ValueError(f"GPUNet config {file_name}: the first layer must be the 'data' layer")
    return tuple(layers)


def load_config(file_name: str) -> list[LayerConfig]:
    """The layers of the config ``gpunet_configs/<file_name>``, as fresh dicts the caller may change."""
    return [dict(layer) for layer in _read_config(file_name)]


def config_resolution(file_name: str) -> int:
    """The input resolution (pixels, square) given by the config's data layer."""
    return int(_read_config(file_name)[0]["img_resolution"])


def config_is_distilled(file_name: str) -> bool:
    """Whether the config builds the distilled family of layers (``"distill": true``)."""
    return bool(_read_config(file_name)[0]["distill"])
