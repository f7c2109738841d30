"""Image preprocessing and prediction decoding (``nvidia_convnets_processing_utils``)."""

from .errors import (
           ImageDecodeError,
           ImageFetchError,
           ImageInputError,
           ImageTooLargeError,
           ProcessingArgumentError,
)
from .topk import NotProbabilitiesWarning
from .utils import ConvNetsProcessingUtils, SkippedImagesWarning

__all__ = ["ConvNetsProcessingUtils", "ImageDecodeError", "ImageFetchError", "ImageInputError",
           "ImageTooLargeError", "NotProbabilitiesWarning", "ProcessingArgumentError", "SkippedImagesWarning"]
