"""Image preprocessing and prediction decoding (``nvidia_convnets_processing_utils``)."""

from .errors import (
           ImageDecodeError,
           ImageFetchError,
           ImageInputError,
           ImageTooLargeError,
           ProcessingArgumentError,
)
from .utils import ConvNetsProcessingUtils, SkippedImagesWarning

__all__ = ["ConvNetsProcessingUtils", "ImageDecodeError", "ImageFetchError", "ImageInputError",
           "ImageTooLargeError", "ProcessingArgumentError", "SkippedImagesWarning"]
