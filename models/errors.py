"""Exceptions raised by convnets-hub.

Bad user input raises a subclass of ``ValueError``; weights that cannot be fetched, verified or
safely loaded raise a subclass of ``RuntimeError``. Every message names the input or file and
the cause.
"""


class InvalidArgumentError(ValueError):
    """An argument given by the user is not valid (its message names the argument and why)."""


class UnknownWeightsError(InvalidArgumentError):
    """``weights=`` names no manifest entry of this entrypoint, nor an existing file or a URL."""


class DatasetError(InvalidArgumentError):
    """An image folder cannot be trained or validated on: missing, without classes, a class without
    images, unreadable files, folder names that are not the model's classes."""


class WeightsError(RuntimeError):
    """Base class for weights that cannot be fetched, verified or loaded."""


class WeightsUnavailableError(WeightsError):
    """No source gave the file (offline, HTTP errors, timeouts)."""


class WeightsVerificationError(WeightsError):
    """A file's sha256, hash prefix or size is not the one the manifest pins."""


class NotACheckpointError(WeightsError):
    """A weights file is not a checkpoint at all: empty, an HTML page, random bytes, or truncated."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint needs a pickle global that is not allow-listed, or an archive member is unsafe."""


class CheckpointMismatchError(WeightsError):
    """A checkpoint's tensors do not match the model's parameters (names or shapes)."""


class InferenceOnlyError(RuntimeError):
    """An ``optimize=True`` model was asked to train (its BatchNorms are folded, its gradients off)."""
