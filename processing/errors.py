"""Bad user input, for the whole hub: ``InvalidArgumentError`` and the processing utilities' errors
(each a ValueError naming the input and the cause), and a broken torch installation.

``models.errors`` re-exports :class:`InvalidArgumentError`, the one base class of bad input that the
library raises.
"""


class InvalidArgumentError(ValueError):
    """An argument given by the user is not valid (its message names the argument and why)."""


class ImageInputError(InvalidArgumentError):
    """An image input (URL, path, bytes, file object or index in a batch) cannot be used."""


class ImageFetchError(ImageInputError):
    """A URL gave no image: refused scheme, HTTP error, timeout, oversized or non-image body."""


class ImageDecodeError(ImageInputError):
    """The bytes are not a decodable image (truncated, corrupt, not an image at all)."""


class ImageTooLargeError(ImageInputError):
    """The image's canvas exceeds the pixel limit (a decompression bomb guard)."""


class ProcessingArgumentError(InvalidArgumentError):
    """Another argument is unusable: ``model=``/``config=`` without a preprocessing configuration, a
    ``cuda=`` device that is not there, predictions or labels of the wrong shape."""


class MismatchedTorchvisionError(ImportError):
    """torchvision does not load with the installed torch: two builds that do not belong together
    (a CPU torch and a CUDA torchvision, or other versions); the message gives the reinstall command."""
