"""``nvidia_convnets_processing_utils``: NVIDIA's preprocessing and top-k, made safe, fast and model-aware."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .budget import PixelBudget
from .decode import ImageSource, decode_rgb, describe, load_rgb, open_image
from .devices import parse_device
from .errors import ImageInputError
from .fetch import FetchSettings
from .labels import imagenet_labels
from .topk import Prediction, pick_n_best
from .transforms import PreprocessConfig, image_to_tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_MAX_PIXELS = 120_000_000
# Decode JPEGs at a reduced scale only while the decoded image stays this many times larger than
# the resize target: the antialiased resize then sees almost the pixels of a full decode.
DRAFT_MARGIN = 2


class SkippedImagesWarning(UserWarning):
    """``prepare_inputs(..., skip_errors=True)`` left out inputs that could not be used."""


class ConvNetsProcessingUtils:
    """Image preprocessing and prediction decoding, drop-in compatible with NVIDIA's utilities.

    Args:
        connect_timeout, read_timeout, total_timeout: seconds for fetching image URLs (to connect,
            between two reads, for the whole response: headers and body, however slowly they come).
        max_bytes: the largest image file or response body accepted (default 64 MiB), as sent and
            as decoded (a gzip- or deflate-compressed body is decoded).
        max_pixels: the largest decoded canvas accepted (a decompression-bomb guard), per image.
        workers: threads that decode a batch in parallel (default: up to 8, two per core).
        max_pixels_at_once: the canvases that this object's threads may decode at once, all images
            and calls together (default: ``max_pixels``): a batch of large images waits its turn
            instead of multiplying decoding's memory; small images still decode in parallel.
    """

    def __init__(self, connect_timeout: float = 10.0, read_timeout: float = 30.0,
                 max_bytes: int = 64 * 1024 * 1024, max_pixels: int = DEFAULT_MAX_PIXELS,
                 workers: int | None = None, total_timeout: float = 120.0, max_pixels_at_once: int | None = None):
        self.fetch = FetchSettings(connect_timeout, read_timeout, max_bytes, total_timeout)
        self.max_pixels = max_pixels
        self.workers = workers or min(8, 2 * (os.cpu_count() or 1))
        self.decoding_budget = PixelBudget(max_pixels_at_once or max_pixels)

    def prepare_input_from_uri(self, uri: ImageSource, cuda: bool | str | torch.device = False, model: Any = None,
                               config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """One image as a normalized float32 batch of one (1 x C x H x W).

        ``uri``: an http(s) URL, a path, bytes, a binary file object or a PIL image. Without
        ``model``/``config``: NVIDIA's pipeline (shorter side 256, bilinear, center crop 224,
        ImageNet mean/std); with them: the model's own input size, crop_pct, interpolation, mean
        and std. ``cuda``: True, or a device, to return the tensor there.
        """
        device = parse_device(cuda, "cuda")
        preprocess = PreprocessConfig.resolve(model, config)
        return self._tensor(uri, preprocess).unsqueeze(0).to(device)

    def prepare_inputs(self, uris: Sequence[ImageSource], cuda: bool | str | torch.device = False, model: Any = None,
                       config: Mapping[str, Any] | None = None, workers: int | None = None,
                       skip_errors: bool = False) -> torch.Tensor:
        """Several images as one batch (N x C x H x W), decoded in parallel threads.

        A bad input raises an ImageInputError naming its index and input; with ``skip_errors`` it
        is left out instead and a SkippedImagesWarning lists what was left out and why.
        """
        device = parse_device(cuda, "cuda")
        preprocess = PreprocessConfig.resolve(model, config)
        items = list(uris)
        with ThreadPoolExecutor(max_workers=workers or self.workers) as pool:
            outcomes = list(pool.map(lambda uri: self._attempt(uri, preprocess), items))
        failures = [(index, items[index], outcome) for index, outcome in enumerate(outcomes)
                    if isinstance(outcome, ImageInputError)]
        if failures and not skip_errors:
            index, uri, error = failures[0]
            raise type(error)(f"input {index} ({describe(uri)}): {error}") from error
        if failures:
            warnings.warn("left out " + "; ".join(f"input {index} ({describe(uri)}): {error}"
                                                  for index, uri, error in failures), SkippedImagesWarning,
                          stacklevel=2)
        tensors = [outcome for outcome in outcomes if isinstance(outcome, torch.Tensor)]
        if not tensors:
            return torch.empty(0, *preprocess.input_size, device=device)
        return torch.stack(tensors).to(device)

    @staticmethod
    def pick_n_best(predictions: torch.Tensor, n: int = 5, labels: Sequence[str] | None = None,
                    verbose: bool = True, model: Any = None) -> list[Prediction]:
        """The ``n`` best ``(label, "xx.x%")`` of each sample, printed as ``sample i: [...]`` (NVIDIA's format).

        The class names: ``labels``, else ``model``'s own (its ``pretrained_cfg``: a fine-tuned
        checkpoint's classes), else ImageNet-1k's for 1000 classes.
        """
        return pick_n_best(predictions, n=n, labels=labels, verbose=verbose, model=model)

    @staticmethod
    def get_imgnet_classes() -> np.ndarray:
        """The 1000 ImageNet-1k class names (NVIDIA's method; bundled, never downloaded)."""
        return np.array(imagenet_labels())

    def show(self, images_or_uris: Sequence[ImageSource], results: Sequence[Prediction]) -> Figure:
        """A matplotlib Figure: each image's thumbnail beside bars of its predictions."""
        # Imported here: matplotlib loads only for those who draw.
        from .visualize import show_predictions

        images = [load_rgb(item, self.fetch, self.max_pixels, draft_size=(256, 256)) for item in images_or_uris]
        titles = [Path(item).name if isinstance(item, (str, os.PathLike)) else describe(item)
                  for item in images_or_uris]
        return show_predictions(images, results, titles)

    def _tensor(self, uri: ImageSource, preprocess: PreprocessConfig) -> torch.Tensor:
        if isinstance(uri, Image.Image):  # decoded already
            return image_to_tensor(load_rgb(uri, self.fetch, self.max_pixels), preprocess)
        image, name = open_image(uri, self.fetch, self.max_pixels)
        margin = DRAFT_MARGIN * preprocess.resize_size
        with self.decoding_budget.reserve(image.width * image.height):  # until the full-size pixels are gone
            try:
                return image_to_tensor(decode_rgb(image, name, draft_size=(margin, margin)), preprocess)
            finally:
                image.close()

    def _attempt(self, uri: ImageSource, preprocess: PreprocessConfig) -> torch.Tensor | ImageInputError:
        try:
            return self._tensor(uri, preprocess)
        except ImageInputError as error:
            return error
