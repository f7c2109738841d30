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
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0, "nearest": 0.5, "lanczos": 3.0, "box": 0.5, "hamming": 1.0}
"""Half the width of each filter, in source pixels at scale 1 (Pillow's ``support``)."""
WHOLE_RESIZE_LIMIT = 4
"""A resized image of up to this many crops' pixels is made whole, then cropped; a larger one only in
the part that the crop keeps (:func:`resized_center_crop`)."""


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

    def resizes_whole(self, width: int, height: int) -> bool:
        """Whether an image of ``width`` x ``height`` is resized whole, then cropped: its resized image
        holds at most ``WHOLE_RESIZE_LIMIT`` crops' pixels (else only the crop is resized)."""
        new_width, new_height = self.resized_dimensions(width, height)
        return new_width * new_height <= WHOLE_RESIZE_LIMIT * self.input_size[1] * self.input_size[2]

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
    image = resized_center_crop(image, config)
    height, width = config.input_size[1:]
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).reshape(height, width, -1) / 255.0)
    mean = torch.tensor(config.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(-1, 1, 1)
    return (pixels.permute(2, 0, 1) - mean) / std


def resized_center_crop(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """The ``input_size`` center crop of ``image`` resized as ``config`` says (shorter side to
    ``resize_size``), in memory in proportion to the crop whatever the aspect ratio.

    A resized image of up to ``WHOLE_RESIZE_LIMIT`` crops is made whole and cropped: the pixels of
    torchvision's ``Resize`` and ``CenterCrop`` on a PIL image. A larger one (a panorama, a 1 x 100000
    strip that would become 256 x 25.6 M pixels) is never made: :func:`resized_region` resizes only
    the part of ``image`` that the crop reads.
    """
    if not config.resizes_whole(*image.size):
        return resized_region(image, config)
    new_width, new_height = config.resized_dimensions(*image.size)
    crop_height, crop_width = config.input_size[1:]
    image = image.resize((new_width, new_height), _RESAMPLING[config.interpolation])
    left, top = config.crop_origin(new_width, new_height)
    return image.crop((left, top, left + crop_width, top + crop_height))


def resized_region(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """The center crop of :func:`resized_center_crop`, made by resizing only the part of ``image``
    that the crop reads.

    Each pixel comes from the same source pixels and filter weights as when the whole image is
    resized and cropped (Pillow's two passes, the horizontal one first), up to a rounding where
    Pillow's single-precision region coordinates move a sample position by a hair: on
    scikit-image's and matplotlib's 27 sample photos, bilinear and bicubic, 224/256, 288/303 and
    320/320 crops, at most 2 levels of 255 in 0.06 % of the pixels (box and nearest filters may take
    the neighbouring pixel where a sample falls on a pixel's edge). Where the crop is larger than the
    resized image (an ``input_size`` that is not square), the rest is black, as ``Image.crop`` pads it.
    """
    width, height = image.size
    new_width, new_height = config.resized_dimensions(width, height)
    crop_height, crop_width = config.input_size[1:]
    left, top = config.crop_origin(new_width, new_height)
    x0, y0 = max(left, 0), max(top, 0)  # the part of the crop inside the resized image
    x1, y1 = min(left + crop_width, new_width), min(top + crop_height, new_height)
    resample = _RESAMPLING[config.interpolation]
    columns = _source_span(x0, x1, width, new_width, config.interpolation)
    rows = _source_span(y0, y1, height, new_height, config.interpolation)
    part = image.crop((columns[0], rows[0], columns[1], rows[1]))
    # Horizontal pass, then vertical pass (the order of Pillow's resize of the whole image), each
    # over the region of the part that the crop maps to.
    part = part.resize((x1 - x0, part.height), resample,
                       box=(x0 * width / new_width - columns[0], 0, x1 * width / new_width - columns[0], part.height))
    region = part.resize((x1 - x0, y1 - y0), resample,
                         box=(0, y0 * height / new_height - rows[0], part.width, y1 * height / new_height - rows[0]))
    if region.size == (crop_width, crop_height):
        return region
    canvas = Image.new(image.mode, (crop_width, crop_height))
    canvas.paste(region, (x0 - left, y0 - top))
    return canvas


def _source_span(start: int, end: int, size: int, new_size: int, interpolation: str) -> tuple[int, int]:
    """The source pixels [first, last) that the resized pixels [start, end) of one axis read: their
    sample positions widened by the filter's support (scaled when shrinking), within the image."""
    scale = size / new_size
    support = _SUPPORT[interpolation] * max(scale, 1.0) + 1  # one pixel more: rounding never reaches the edge
    return max(0, math.floor(start * scale - support)), min(size, math.ceil(end * scale + support))
