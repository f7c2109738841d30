"""Image preprocessing and prediction decoding (``nvidia_convnets_processing_utils``).

The errors are imported with the package; the utilities (and torch with them) at their first use,
so that reading a constant of a light submodule (``processing.imagenet``) costs nothing.
"""

import importlib

from .errors import (
    ImageDecodeError,
    ImageFetchError,
    ImageInputError,
    ImageTooLargeError,
    ProcessingArgumentError,
)

_LAZY = {"ConvNetsProcessingUtils": "nvidia_api", "SkippedImagesWarning": "nvidia_api", "NotProbabilitiesWarning": "topk"}

__all__ = ["ConvNetsProcessingUtils", "ImageDecodeError", "ImageFetchError", "ImageInputError",
           "ImageTooLargeError", "NotProbabilitiesWarning", "ProcessingArgumentError", "SkippedImagesWarning"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
