"""Exceptions raised by convnets-hub, each defined once: here, but for the bad-input base class
:class:`InvalidArgumentError`, defined with the processing utilities' errors in ``processing/errors.py``
(which imports nothing of ``models``) and re-exported here, so that one hierarchy covers the hub.

Bad user input raises a subclass of ``ValueError``; weights that cannot be fetched, verified or
safely loaded raise a subclass of ``RuntimeError`` (weights that no source could give are also an
``OSError``, as a failed download is). Every message names the input or file and the cause.
Catch them by these built-ins, or by class: this module is ``convnets_hub.models.errors`` in any
process that has loaded the hub (torch.hub.load, ``python3 -m models``, ``import models`` in a clone).
"""

from ..processing.errors import InvalidArgumentError

__all__ = ["CheckpointMismatchError", "DatasetError", "InferenceOnlyError", "InvalidArgumentError", "NotACheckpointError",
           "OutputInUseError", "UnknownEntrypointError", "UnknownWeightsError", "UnsafeCheckpointError", "WeightsError",
           "WeightsUnavailableError", "WeightsVerificationError"]


class OutputInUseError(InvalidArgumentError):
    """Another run is writing the same output file (it holds the lock beside it); exit code 2 on the CLI."""


class UnknownWeightsError(InvalidArgumentError):
    """``weights=`` names no manifest entry of this entrypoint, nor an existing file or a URL."""


class DatasetError(InvalidArgumentError):
    """An image folder cannot be trained or validated on: missing, without classes, a class without
    images, unreadable files, folder names that are not the model's classes."""


class WeightsError(RuntimeError):
    """Base class for weights that cannot be fetched, verified or loaded."""


class UnknownEntrypointError(InvalidArgumentError):
    """A name that is not a model entrypoint of the repository."""


class WeightsUnavailableError(WeightsError, OSError):
    """No source gave the file (offline, HTTP errors, timeouts): ``except OSError`` catches it too."""


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
