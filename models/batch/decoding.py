"""Sources to the model's input tensors, with the hub's own preprocessing; a failure becomes its message.

A decoder has two steps: ``load(source)``, run in parallel worker threads (or Ray tasks), and
``finish(loaded)``, run once per batch where the model runs. ``CpuDecoder`` does all the work in
``load`` (``prepare_input_from_uri``, exactly the hub's pixels); ``GpuJpegDecoder`` only reads the
bytes there and decodes a batch of JPEGs on the model's device in ``finish``
(``torchvision.io.decode_jpeg``, nvJPEG on a GPU), other images going the CPU way.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ...processing import ConvNetsProcessingUtils
from ...processing.transforms import PreprocessConfig

Decoded = torch.Tensor | str  # a (C, H, W) float32 image, or why there is none


@functools.cache
def processing_utils() -> ConvNetsProcessingUtils:
    """One ``ConvNetsProcessingUtils`` with its defaults (what ``nvidia_convnets_processing_utils()`` returns)."""
    return ConvNetsProcessingUtils()


class Decoder(Protocol):
    def load(self, source: str) -> Any: ...

    def finish(self, loaded: Sequence[Any]) -> list[Decoded]: ...


def describe_error(error: BaseException) -> str:
    """An error row's text, one line: the exception's type and message (which name the input)."""
    return " ".join(f"{type(error).__name__}: {error}".split())


class CpuDecoder:
    """``prepare_input_from_uri(source, config=preprocess)`` on the CPU, one image per ``load``."""

    def __init__(self, preprocess: Mapping[str, Any]) -> None:
        self.preprocess = dict(preprocess)

    def load(self, source: str) -> Decoded:
        try:
            return processing_utils().prepare_input_from_uri(source, config=self.preprocess)[0]
        except (ValueError, OSError) as error:  # the processing's ImageInputErrors; unreadable files
            return describe_error(error)

    def finish(self, loaded: Sequence[Decoded]) -> list[Decoded]:
        return list(loaded)


@dataclass(frozen=True)
class _JpegBytes:
    source: str
    data: bytes


_GPU_INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                       "nearest": InterpolationMode.NEAREST}


class GpuJpegDecoder:
    """Local RGB/greyscale JPEGs decoded in batches on ``device`` and preprocessed there (antialiased
    resize, center crop, normalization as the hub's ``PreprocessConfig`` says); everything else
    (URLs, PNGs, CMYK JPEGs, greyscale models, other interpolations) through ``CpuDecoder``.

    The pixels differ a little from the CPU path's (another JPEG decoder, no reduced-scale
    decoding, torch's resize kernels): within the mean absolute difference that the preprocessing
    tests allow against NVIDIA's pipeline.
    """

    def __init__(self, preprocess: Mapping[str, Any], device: str | torch.device) -> None:
        self.cpu = CpuDecoder(preprocess)
        self.config = PreprocessConfig.from_mapping(preprocess)
        self.device = torch.device(device)
        self.enabled = self.config.input_size[0] == 3 and self.config.interpolation in _GPU_INTERPOLATIONS
        self.mean = torch.tensor(self.config.mean, device=self.device).view(-1, 1, 1)
        self.std = torch.tensor(self.config.std, device=self.device).view(-1, 1, 1)

    def load(self, source: str) -> Decoded | _JpegBytes:
        path = Path(source)
        utils = processing_utils()
        if not self.enabled or "://" in source[:16] or not path.is_file() or path.stat().st_size > utils.fetch.max_bytes:
            return self.cpu.load(source)
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as header:
                suitable = header.format == "JPEG" and header.mode in ("RGB", "L") \
                    and header.width * header.height <= utils.max_pixels
        except (OSError, ValueError, Image.DecompressionBombError):
            suitable = False
        return _JpegBytes(source, data) if suitable else self.cpu.load(source)

    def finish(self, loaded: Sequence[Decoded | _JpegBytes]) -> list[Decoded]:
        jpegs = [item for item in loaded if isinstance(item, _JpegBytes)]
        images = iter(self._decode(jpegs))
        return [self._preprocess(next(images), item) if isinstance(item, _JpegBytes) else item for item in loaded]

    def _decode(self, jpegs: list[_JpegBytes]) -> list[torch.Tensor | None]:
        if not jpegs:
            return []
        data = [torch.frombuffer(bytearray(item.data), dtype=torch.uint8) for item in jpegs]
        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device, apply_exif_orientation=True))
        except RuntimeError:  # one bad file fails the batch: decode one by one to find it
            return [self._decode_one(tensor) for tensor in data]

    def _decode_one(self, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device, apply_exif_orientation=True)
        except RuntimeError:
            return None

    def _preprocess(self, image: torch.Tensor | None, item: _JpegBytes) -> Decoded:
        if image is None:
            return self.cpu.load(item.source)  # the CPU decoder's error message, or its pixels
        height, width = image.shape[-2:]
        new_width, new_height = self.config.resized_dimensions(width, height)
        resized = F.resize(image.float(), [new_height, new_width],
                           interpolation=_GPU_INTERPOLATIONS[self.config.interpolation], antialias=True)
        crop_height, crop_width = self.config.input_size[1:]
        top, left = round((new_height - crop_height) / 2.0), round((new_width - crop_width) / 2.0)
        pixels = resized[:, top:top + crop_height, left:left + crop_width].clamp(0, 255) / 255.0
        return (pixels - self.mean) / self.std


def make_decoder(kind: str, preprocess: Mapping[str, Any], device: str | torch.device) -> Decoder:
    """``kind``: 'cpu', 'gpu' (JPEGs on ``device``) or 'auto' (the GPU when ``device`` is one)."""
    if kind == "gpu" or (kind == "auto" and torch.device(device).type == "cuda"):
        return GpuJpegDecoder(preprocess, device)
    return CpuDecoder(preprocess)
