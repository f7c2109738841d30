"""Sources to the model's input tensors, with the hub's own preprocessing; a failure becomes its message.

Three decoders, chosen by ``--decode`` (:func:`choose_decoding`, :func:`make_decoder`):

* ``cpu``: :class:`CpuDecoder`, ``prepare_input_from_uri`` in worker threads, one image each:
  exactly the hub's pixels;
* ``gpu``: :class:`GpuJpegDecoder`, local RGB/greyscale JPEGs decoded in batches by the JPEG
  library that :mod:`.jpeg_backends` chooses (TorchCodec's ``decode_jpeg`` by default: nvJPEG on a
  GPU, libjpeg-turbo on a CPU) from one thread, resized in uint8 a group of same-size images at a
  time, center-cropped and normalized last, as one batch, on a CUDA stream of its own that overlaps
  the model; a few reader threads read the bytes (into pinned memory on a GPU) a batch ahead. Other
  inputs (URLs, PNGs, CMYK JPEGs, greyscale models, other interpolations, images so long and thin
  that their resized image would hold more than ``WHOLE_RESIZE_LIMIT`` crops, which the CPU way
  resizes only in the crop) and JPEGs the library rejects go the CPU way;
* ``hybrid`` (``auto`` on a GPU): both at once, taking images from one queue
  (:mod:`.decode_queue`), so that the CPU's and the GPU's decoding rates add up.

The GPU path's pixels differ from ``prepare_input_from_uri``'s: another JPEG decoder (no
reduced-scale DCT decoding of large photos, which the CPU path uses; on a GPU, nvJPEG's own IDCT
and chroma upsampling) and torch's resize kernels. Measured with ``decode_jpeg`` on the CPU
(libjpeg-turbo, TorchCodec's and torchvision's alike; torch's uint8 resize is PIL's algorithm)
over 16 JPEGs, scikit-image's and matplotlib's sample photos at their own size (300-1411 px) and
upscaled to 1536 px
(``tests/models/batch/test_classify.py::test_gpu_decoding_stays_close_to_the_hub_pixels``, which holds the
bounds in brackets): mean absolute difference 0.22 of 255 levels (<= 0.3), 99th percentile 3
levels (<= 4), largest 33 (at edges); photos small enough to be decoded at full scale by both
paths differ by at most one level. A seeded resnet50 (BatchNorm statistics of these photos) keeps
96 % of its top-5 classes (>= 95 %) and its top-1 class on 14 of 16 photos (>= 80 %). nvJPEG's
difference is not measured yet (no GPU was lent to this work): the same test, CUDA-marked, holds it
to the same bounds on a GPU (``benchmarks/gpu/run.sh`` runs it).
``--decode cpu`` gives the hub's exact pixels.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import Any, Protocol

import torch
from PIL import ExifTags, Image

# isort: off
from ...processing import torchvision_pair  # noqa: F401 -- first: a mismatched torchvision is one clear line
# isort: on
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ...processing import ConvNetsProcessingUtils
from ...processing.fetch import is_url
from ...processing.transforms import PreprocessConfig
from .decode_kinds import GPU_BATCH_SIZE, choose_decoding
from .decode_queue import DecodeQueue, Worker
from .jpeg_backends import JpegBackend, choose_jpeg_backend, requested_backend

Decoded = torch.Tensor | str  # a (C, H, W) float32 image, or why there is none

GPU_READERS = 4  # threads that read the GPU decoder's bytes
RESIZE_GROUP = 32  # same-size images resized in one call (a GPU resizes them in float32 memory)


@functools.cache
def processing_utils() -> ConvNetsProcessingUtils:
    """One ``ConvNetsProcessingUtils`` with its defaults (what ``nvidia_convnets_processing_utils()`` returns)."""
    return ConvNetsProcessingUtils()


def describe_error(error: BaseException) -> str:
    """An error row's text, one line: the exception's type and message (which name the input)."""
    return " ".join(f"{type(error).__name__}: {error}".split())


class Decoder(Protocol):
    """What the local engine runs: threads that take sources from one :class:`DecodeQueue` and put
    back decoded images, then ``finish`` in the model's thread for each batch."""

    def workers(self, threads: int) -> list[Worker]: ...

    def images_in_flight(self, threads: int) -> int: ...

    def finish(self, decoded: Sequence[Decoded]) -> list[Decoded]: ...


class CpuDecoder:
    """``prepare_input_from_uri(source, config=preprocess)`` on the CPU, one image per ``load``."""

    def __init__(self, preprocess: Mapping[str, Any]) -> None:
        self.preprocess = dict(preprocess)

    def load(self, source: str) -> Decoded:
        try:
            return processing_utils().prepare_input_from_uri(source, config=self.preprocess)[0]
        except (ValueError, OSError) as error:  # the processing's ImageInputErrors; unreadable files
            return describe_error(error)

    def workers(self, threads: int) -> list[Worker]:
        """``threads`` threads, each taking one image at a time, nicer than the model's threads."""
        return [Worker(self._take_and_load, nice=True) for _ in range(threads)]

    def _take_and_load(self, queue: DecodeQueue) -> None:
        while taken := queue.take(1):
            queue.put([(index, self.load(source)) for index, source in taken])

    def images_in_flight(self, threads: int) -> int:
        return threads

    def finish(self, decoded: Sequence[Decoded]) -> list[Decoded]:
        return list(decoded)


@dataclass(frozen=True)
class JpegBytes:
    """A JPEG file's bytes (uint8, pinned for a GPU) and its EXIF orientation (1: as stored)."""

    source: str
    data: torch.Tensor
    orientation: int = 1


_GPU_INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
# EXIF orientation -> what PIL.ImageOps.exif_transpose does, on a (..., H, W) tensor
_ORIENT: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    2: lambda x: x.flip(-1),
    3: lambda x: x.flip(-2, -1),
    4: lambda x: x.flip(-2),
    5: lambda x: x.transpose(-2, -1),
    6: lambda x: torch.rot90(x, -1, (-2, -1)),
    7: lambda x: x.transpose(-2, -1).flip(-2, -1),
    8: lambda x: torch.rot90(x, 1, (-2, -1)),
}


class GpuJpegDecoder:
    """JPEGs decoded ``batch_size`` at a time on ``device`` and preprocessed there (resize, center
    crop, normalization as the hub's ``PreprocessConfig`` says); everything else through
    ``CpuDecoder``. ``read`` runs in any thread, ``decode`` in one thread (nvJPEG serializes its
    callers: one thread with large batches is its fastest use). ``jpeg_backend`` names the JPEG
    library (:mod:`.jpeg_backends`; default: ``CONVNETS_HUB_JPEG_DECODER``, else the first that
    works). Nothing loads it nor touches CUDA before the first ``decode``."""

    def __init__(self, preprocess: Mapping[str, Any], device: str | torch.device,
                 batch_size: int = GPU_BATCH_SIZE, jpeg_backend: str | None = None) -> None:
        self.cpu = CpuDecoder(preprocess)
        self.config = PreprocessConfig.from_mapping(preprocess)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.jpeg_backend_name = requested_backend(jpeg_backend)  # a bad name fails here, before any work
        self.enabled = self.config.input_size[0] == 3 and self.config.interpolation in _GPU_INTERPOLATIONS
        self._stream: torch.cuda.Stream | None = None

    def read(self, source: str) -> JpegBytes | Decoded:
        """The bytes of a JPEG this decoder can take, else ``CpuDecoder``'s image or error."""
        path = Path(source)
        utils = processing_utils()
        if not self.enabled or is_url(source) or not path.is_file():
            return self.cpu.load(source)
        try:
            with path.open("rb") as file:
                size = path.stat().st_size
                with Image.open(file) as header:
                    suitable = header.format == "JPEG" and header.mode in ("RGB", "L") \
                        and header.width * header.height <= utils.max_pixels and 0 < size <= utils.fetch.max_bytes \
                        and self.config.resizes_whole(header.width, header.height)
                    orientation = header.getexif().get(ExifTags.Base.Orientation, 1) if suitable else 1
                if not suitable:
                    return self.cpu.load(source)
                file.seek(0)
                data = torch.empty(size, dtype=torch.uint8, pin_memory=self.device.type == "cuda")
                if file.readinto(data.numpy()) != size:  # the file changed while read
                    return self.cpu.load(source)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return self.cpu.load(source)
        return JpegBytes(source, data, orientation if orientation in _ORIENT else 1)

    def decode(self, jpegs: Sequence[JpegBytes]) -> list[Decoded]:
        """Preprocessed images of ``jpegs`` (views of one batch on ``device``), in order; a JPEG
        that the JPEG library rejects goes the CPU way (its pixels, or the CPU decoder's error)."""
        if not jpegs:
            return []
        with self._on_stream():
            images = self._decode_jpegs([item.data for item in jpegs])
            good = [index for index, image in enumerate(images) if image is not None]
            upright = self.jpeg_backend.applies_exif_orientation
            oriented = [images[index] if upright else _ORIENT.get(jpegs[index].orientation, _as_stored)(images[index])
                        for index in good]
            batch = self._normalize(self._resize_and_crop(oriented)) if good else None
        by_index = dict(zip(good, batch.unbind(0), strict=True)) if batch is not None else {}
        return [by_index[index] if index in by_index else self.cpu.load(item.source)
                for index, item in enumerate(jpegs)]

    def finish(self, decoded: Sequence[Decoded]) -> list[Decoded]:
        """In the model's thread: its CUDA stream waits for the decoding stream, and the decoded
        images' memory is kept until the model's stream is done with it."""
        if self._stream is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self._stream)
            for item in decoded:
                if isinstance(item, torch.Tensor) and item.device.type == "cuda":
                    item.record_stream(current)
        return list(decoded)

    def workers(self, threads: int) -> list[Worker]:
        """A reader thread (reading a batch ahead with up to ``GPU_READERS`` threads, CPU-decoding
        what nvJPEG cannot take) and the decoding thread, which the reader hands batches to."""
        handoff: Queue[list[tuple[int, JpegBytes]] | None] = Queue(maxsize=1)
        readers = max(1, min(threads, GPU_READERS))
        return [Worker(functools.partial(self._read_batches, handoff=handoff, readers=readers)),
                Worker(functools.partial(self._decode_batches, handoff=handoff))]

    def images_in_flight(self, threads: int) -> int:
        return 3 * self.batch_size  # being read, handed over, being decoded

    def _read_batches(self, queue: DecodeQueue, handoff: Queue, readers: int) -> None:
        try:
            with ThreadPoolExecutor(readers, thread_name_prefix="classify-read") as pool:
                while taken := queue.take(self.batch_size):
                    loaded = list(pool.map(self.read, [source for _, source in taken]))
                    jpegs = [(index, item) for (index, _), item in zip(taken, loaded, strict=True)
                             if isinstance(item, JpegBytes)]
                    queue.put((index, item) for (index, _), item in zip(taken, loaded, strict=True)
                              if not isinstance(item, JpegBytes))
                    if jpegs:
                        handoff.put(jpegs)
        finally:
            handoff.put(None)

    def _decode_batches(self, queue: DecodeQueue, handoff: Queue) -> None:
        batch = handoff.get()
        try:
            while batch is not None:
                queue.put(zip([index for index, _ in batch], self.decode([item for _, item in batch]), strict=True))
                batch = handoff.get()
        except BaseException as error:
            queue.fail(error)
            while batch is not None:  # the reader ends now that the queue is closed: take its last batch
                batch = handoff.get()
            raise

    def _on_stream(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        return torch.cuda.stream(self._stream)

    @functools.cached_property
    def jpeg_backend(self) -> JpegBackend:
        """The JPEG library of this decoder, chosen (and probed) at the first ``decode``."""
        return choose_jpeg_backend(self.device, self.jpeg_backend_name)

    def _decode_jpegs(self, data: list[torch.Tensor]) -> list[torch.Tensor | None]:
        backend = self.jpeg_backend  # outside the try: a failed choice is no bad JPEG, it ends the run
        try:
            return self._decode_on_stream(backend, data)
        except (RuntimeError, ValueError):  # one bad file fails the batch: decode one by one to find it
            return [self._decode_one(backend, item) for item in data]

    def _decode_one(self, backend: JpegBackend, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return self._decode_on_stream(backend, [data])[0]
        except (RuntimeError, ValueError):
            return None

    def _decode_on_stream(self, backend: JpegBackend, data: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """The JPEG library's images, decoded on this decoder's stream into memory no stream still uses.

        nvJPEG's hardware engine (A100, H100: its batched decode) does not wait for the work queued
        on the stream it is given before it writes its outputs, and those outputs come from torch's
        caching allocator, which hands a block freed on a stream straight back to the next allocation
        on that stream, while kernels queued there may still read it: the decode overwrites them (134
        of 200 iterations corrupted on an H100: pytorch/vision#9606, not merged; TorchCodec merged a
        host synchronization inside its decoder, meta-pytorch/torchcodec#1634). A device-side
        wait (``wait_stream``, ``cudaStreamWaitEvent``) does not stop the early write, only a host wait
        does, so: everything is decoded on a stream of our own, which carries only this decoder's
        resizing, and that stream is host-synchronized before each decode call (cheap: the JPEG
        libraries host-synchronize when they return anyway, and the model runs on another stream).
        The images handed to the model are the other half (:meth:`finish`): they are recorded on the
        model's stream, so the allocator reuses their memory only once the model's queued reads of it
        have run (it checks that on the host). This holds for every backend, whatever its version."""
        if self._stream is not None:
            self._stream.synchronize()
        return backend.decode(data)

    def _resize_and_crop(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The uint8 (N, 3, H, W) center crops of the resized images, resizing same-size images together."""
        crop_height, crop_width = self.config.input_size[1:]
        crops = torch.empty(len(images), 3, crop_height, crop_width, dtype=torch.uint8, device=self.device)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault((image.shape[-2], image.shape[-1]), []).append(index)
        interpolation = _GPU_INTERPOLATIONS[self.config.interpolation]
        for (height, width), members in groups.items():
            new_width, new_height = self.config.resized_dimensions(width, height)
            left, top = self.config.crop_origin(new_width, new_height)
            for start in range(0, len(members), RESIZE_GROUP):
                chunk = members[start:start + RESIZE_GROUP]
                resized = F.resize(torch.stack([images[index] for index in chunk]), [new_height, new_width],
                                   interpolation=interpolation, antialias=True)
                crops[chunk] = resized[..., top:top + crop_height, left:left + crop_width]
        return crops

    def _normalize(self, crops: torch.Tensor) -> torch.Tensor:
        mean, std = self._statistics
        return (crops.float() / 255.0 - mean) / std

    @functools.cached_property
    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.config.mean, device=self.device).view(-1, 1, 1),
                torch.tensor(self.config.std, device=self.device).view(-1, 1, 1))


def _as_stored(image: torch.Tensor) -> torch.Tensor:
    return image


class HybridDecoder:
    """CPU worker threads and the GPU decoder, taking images from one queue: the CPU's rate adds to
    the GPU's. Each image goes one of the two ways, whichever takes it first."""

    def __init__(self, cpu: CpuDecoder, gpu: GpuJpegDecoder) -> None:
        self.cpu, self.gpu = cpu, gpu

    def workers(self, threads: int) -> list[Worker]:
        return self.cpu.workers(threads) + self.gpu.workers(threads)

    def images_in_flight(self, threads: int) -> int:
        return self.cpu.images_in_flight(threads) + self.gpu.images_in_flight(threads)

    def finish(self, decoded: Sequence[Decoded]) -> list[Decoded]:
        return self.gpu.finish(decoded)


def make_decoder(kind: str, preprocess: Mapping[str, Any], device: str | torch.device, *,
                 gpu_batch_size: int = GPU_BATCH_SIZE,
                 jpeg_backend: str | None = None) -> CpuDecoder | GpuJpegDecoder | HybridDecoder:
    """The decoder of ``--decode kind`` (see :func:`choose_decoding`); GPU decoding runs on ``device``
    (on a CPU device, the JPEG library's CPU decoder runs the same code), ``gpu_batch_size`` JPEGs a
    call, with the JPEG library ``jpeg_backend`` (default: :mod:`.jpeg_backends` chooses)."""
    chosen = choose_decoding(kind, device)
    cpu = CpuDecoder(preprocess)
    if chosen == "cpu":
        return cpu
    gpu = GpuJpegDecoder(preprocess, device, batch_size=gpu_batch_size, jpeg_backend=jpeg_backend)
    return gpu if chosen == "gpu" else HybridDecoder(cpu, gpu)
