"""Which library decodes the JPEGs of ``--decode gpu`` and ``--decode hybrid``: the one place that chooses.

Tried in the order of :data:`PREFERENCE`, the first that loads and decodes a probe JPEG on the device wins:

1. ``torchcodec``: TorchCodec's ``decode_jpeg`` (``torchcodec >= 0.16``, in ``requirements-batch.txt``):
   nvJPEG on a CUDA device, a batch per call, on the hardware decoder engines where the GPU has them
   (A100, H100), libjpeg-turbo on a CPU. The maintained successor of torchvision's decoders. It
   turns photos upright by their EXIF orientation itself.
2. ``nvimgcodec``: NVIDIA's nvImageCodec (``pip install nvidia-nvimgcodec-cu13[nvjpeg]``, or ``-cu12``),
   batched, hardware engines too; CUDA devices only. Not a requirement: it is 30 MB with nvJPEG and
   cannot even build a decoder without a CUDA driver.
3. ``torchvision``: ``torchvision.io.decode_jpeg``, always there, deprecated since torchvision 0.29
   (its deprecation warning is kept from our users: it is a fallback they did not choose). Its CUDA
   decoder holds one process-wide lock and synchronizes around each call.

The order is PROVISIONAL: the issue asks to choose by measurement, and no GPU has measured these
decoders yet; ``benchmarks/gpu/run.sh`` measures each one (``decode alone`` rows), after which this order
follows the figures in ``benchmarks/RESULTS.md``. To pick one (benchmarks, or a GPU where another is
faster), set ``CONVNETS_HUB_JPEG_DECODER`` to its name: then it is that one or an error saying why not.

Whatever the backend, the caller (:class:`~.decoding.GpuJpegDecoder`) keeps nvJPEG from writing into
memory another stream still reads: see its ``_decode_on_stream``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from ..errors import InvalidArgumentError
from ..settings import JPEG_DECODER_ENV, jpeg_decoder

PREFERENCE = ("torchcodec", "nvimgcodec", "torchvision")  # provisional: see the module's docstring


class JpegBackendUnavailable(Exception):
    """This backend cannot decode on this device here (not installed, wrong device, failed probe): the
    chooser tries the next one, or, for a backend asked for by name, raises ``InvalidArgumentError``."""


class JpegBackend(Protocol):
    """Decodes a batch of JPEGs (1-D uint8 CPU tensors) to RGB uint8 (3, H, W) tensors on ``device``,
    on the current CUDA stream; ``None`` for an image it could not decode. A whole batch may also fail
    with ``RuntimeError`` or ``ValueError`` (the caller then decodes the images one by one)."""

    name: str
    applies_exif_orientation: bool  # its images are already upright

    def decode(self, data: Sequence[torch.Tensor]) -> list[torch.Tensor | None]: ...


class TorchCodecJpeg:
    """``torchcodec.decoders.decode_jpeg``: nvJPEG on CUDA (host-synchronized on return), libjpeg-turbo on a CPU."""

    name = "torchcodec"
    applies_exif_orientation = True

    def __init__(self, device: torch.device) -> None:
        try:
            from torchcodec.decoders import decode_jpeg
        except Exception as error:  # not installed, or built for another torch: its libraries fail to load
            raise JpegBackendUnavailable(f"torchcodec cannot be imported ({error})") from error
        self.device, self._decode_jpeg = device, decode_jpeg

    def decode(self, data: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        return list(self._decode_jpeg(list(data), mode="RGB", device=self.device))


class NvImageCodecJpeg:
    """NVIDIA nvImageCodec's batched decoder on a CUDA device, output planar RGB, EXIF left to the caller."""

    name = "nvimgcodec"
    applies_exif_orientation = False

    def __init__(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise JpegBackendUnavailable(f"nvImageCodec decodes on CUDA devices only, not {device}")
        try:
            from nvidia import nvimgcodec
        except ImportError as error:
            raise JpegBackendUnavailable(f"nvImageCodec is not installed ({error})") from error
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            self._decoder = nvimgcodec.Decoder(device_id=index)
        except RuntimeError as error:  # no driver, or no nvJPEG
            raise JpegBackendUnavailable(f"nvImageCodec has no decoder on {device} ({error})") from error
        self._codec, self.device = nvimgcodec, device
        self._params = nvimgcodec.DecodeParams(apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB,
                                               sample_format=nvimgcodec.SampleFormat.P_RGB)

    def decode(self, data: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        sources = [self._codec.CodeStream(item.numpy()) for item in data]
        stream = torch.cuda.current_stream(self.device).cuda_stream  # its output is ordered on this stream
        images = self._decoder.decode(sources, params=self._params, cuda_stream=stream)
        # torch.from_dlpack passes the current stream to the image's __dlpack__, which orders the hand-over
        return [None if image is None else torch.from_dlpack(image).to(self.device) for image in images]


class TorchvisionJpeg:
    """``torchvision.io.decode_jpeg`` (deprecated in torchvision 0.29), its deprecation warning kept from users."""

    name = "torchvision"
    applies_exif_orientation = False  # it does on a CPU only when asked: the caller turns the images

    def __init__(self, device: torch.device) -> None:
        from torchvision.io import ImageReadMode, decode_jpeg

        self.device, self._decode_jpeg, self._rgb = device, decode_jpeg, ImageReadMode.RGB

    def decode(self, data: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
            return list(self._decode_jpeg(list(data), mode=self._rgb, device=self.device))


BACKENDS: dict[str, Callable[[torch.device], JpegBackend]] = {
    "torchcodec": TorchCodecJpeg, "nvimgcodec": NvImageCodecJpeg, "torchvision": TorchvisionJpeg}


def requested_backend(name: str | None = None) -> str | None:
    """The backend asked for: ``name``, else ``CONVNETS_HUB_JPEG_DECODER``, else ``None`` (choose);
    checked without loading anything."""
    source = "jpeg_backend"
    if not name:
        name, source = jpeg_decoder(), JPEG_DECODER_ENV
    if name is not None and name not in BACKENDS:
        raise InvalidArgumentError(f"{source}={name!r}: choose one of {', '.join(BACKENDS)}")
    return name


def choose_jpeg_backend(device: str | torch.device, name: str | None = None) -> JpegBackend:
    """The backend that decodes JPEGs on ``device``: ``name`` (or ``CONVNETS_HUB_JPEG_DECODER``) if
    given, else the first of :data:`PREFERENCE` that loads and decodes a probe JPEG there."""
    device = torch.device(device)
    name = requested_backend(name)
    reasons = []
    for candidate in (name,) if name else PREFERENCE:
        try:
            return _probed(BACKENDS[candidate](device))
        except JpegBackendUnavailable as reason:
            reasons.append(f"{candidate}: {reason}")
    if name:
        raise InvalidArgumentError(f"the JPEG library {name!r} cannot decode on {device}: {reasons[0]}")
    raise RuntimeError(f"no JPEG decoder works on {device}: {'; '.join(reasons)}")


def _probed(backend: JpegBackend) -> JpegBackend:
    """``backend``, once it has decoded a small JPEG right (a library that imports may still fail on
    the device: a CUDA build for another driver, a missing nvJPEG)."""
    try:
        (image,) = backend.decode([_probe_jpeg()])
    except (RuntimeError, ValueError, OSError) as error:
        raise JpegBackendUnavailable(f"its probe decode failed ({error})") from error
    if image is None or tuple(image.shape) != (3, 8, 16) or image.dtype != torch.uint8:
        raise JpegBackendUnavailable(f"its probe decode gave {None if image is None else tuple(image.shape)}")
    return backend


def _probe_jpeg() -> torch.Tensor:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 120, 40)).save(buffer, "JPEG")
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
