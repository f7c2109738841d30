"""Resize, center-crop and normalize as a model's ``pretrained_cfg`` says (timm's conventions)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import ProcessingArgumentError
from .imagenet import IMAGENET_MEAN, IMAGENET_STD

PREPROCESS_KEYS = ("input_size", "crop_pct", "interpolation", "mean", "std")
"""The keys of a ``pretrained_cfg`` that say how to preprocess an image for the model (timm's names)."""
_RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS,
               "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


@dataclass(frozen=True)
class PreprocessConfig:
    """The default is NVIDIA's pipeline: shorter side to 256 (bilinear), center crop 224, ImageNet mean/std."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> PreprocessConfig:
        try:
            config = cls(input_size=tuple(int(v) for v in cfg["input_size"]), crop_pct=float(cfg.get("crop_pct", 1.0)),
                         interpolation=str(cfg.get("interpolation", "bilinear")).lower(),
                         mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProcessingArgumentError(f"config {dict(cfg)!r} lacks a valid {exc} "
                                        "(needs input_size, mean, std; optional crop_pct, interpolation)") from exc
        channels = config.input_size[0]
        if len(config.input_size) != 3 or channels not in (1, 3) or len(config.mean) != channels \
                or len(config.std) != channels or not 0 < config.crop_pct <= 1 \
                or config.interpolation not in _RESAMPLING:
            raise ProcessingArgumentError(f"config {dict(cfg)!r} is not a valid preprocessing configuration")
        return config

    @classmethod
    def resolve(cls, model: Any = None, config: Mapping[str, Any] | None = None) -> PreprocessConfig:
        """``config`` if given, else ``model.pretrained_cfg`` (also through torch.compile), else NVIDIA's."""
        if config is not None:
            return cls.from_mapping(config)
        if model is None:
            return cls()
        cfg = model_config(model)
        if cfg is None:
            raise ProcessingArgumentError(f"model={type(model).__name__} has no pretrained_cfg; pass config= instead")
        return cls.from_mapping(cfg)

    @property
    def resize_size(self) -> int:
        """The length the shorter side is resized to before the center crop."""
        return math.floor(min(self.input_size[1:]) / self.crop_pct)

    def resized_dimensions(self, width: int, height: int) -> tuple[int, int]:
        """torchvision's Resize(int): the shorter side becomes ``resize_size``, the aspect ratio is kept."""
        short, long = sorted((width, height))
        new_long = int(self.resize_size * long / short)
        return (self.resize_size, new_long) if width <= height else (new_long, self.resize_size)

    def crop_origin(self, width: int, height: int) -> tuple[int, int]:
        """(left, top) of the centered ``input_size`` crop of a resized image of ``width`` x ``height``."""
        crop_height, crop_width = self.input_size[1:]
        return round((width - crop_width) / 2.0), round((height - crop_height) / 2.0)


def model_config(model: Any) -> Mapping[str, Any] | None:
    """``model.pretrained_cfg``, also through a ``torch.compile`` wrapper (``_orig_mod``); None if it has none."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(getattr(model, "_orig_mod", None), "pretrained_cfg", None)
    return cfg if isinstance(cfg, Mapping) else None


def image_to_tensor(image: Image.Image, config: PreprocessConfig) -> torch.Tensor:
    """A normalized float32 tensor (C, H, W) from an RGB image."""
    if config.input_size[0] == 1:
        image = image.convert("L")
    image = image.resize(config.resized_dimensions(*image.size), _RESAMPLING[config.interpolation])
    height, width = config.input_size[1:]
    left, top = config.crop_origin(image.width, image.height)
    image = image.crop((left, top, left + width, top + height))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).reshape(height, width, -1) / 255.0)
    mean = torch.tensor(config.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(-1, 1, 1)
    return (pixels.permute(2, 0, 1) - mean) / std

