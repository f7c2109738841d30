"""torchvision imported once, with one clear line when its build does not match torch's.

pip can install a CPU torch beside a CUDA torchvision (or versions that do not belong together):
``import torchvision`` then fails deep inside, e.g. ``operator torchvision::nms does not exist``,
often under timm's import. Importing this module imports torchvision, checked: the modules of ours
through which timm or torchvision are first imported (the model factory, the batch decoders, the
training data) import it before them, so the failure is one :class:`MismatchedTorchvisionError`
line saying what to reinstall, from which index.
"""

from __future__ import annotations

import functools
from importlib import metadata

import torch

from .errors import MismatchedTorchvisionError

PYTORCH_INDEX = "https://download.pytorch.org/whl"


@functools.cache
def require_torchvision() -> None:
    """Import torchvision; a failure that comes from mismatched builds raises MismatchedTorchvisionError."""
    try:
        import torchvision  # noqa: F401 -- imported for the check
    except ModuleNotFoundError as error:
        if error.name == "torchvision":
            raise  # not installed at all: Python's own message says it
        raise MismatchedTorchvisionError(mismatch_message(error)) from error
    except (RuntimeError, OSError, ImportError, AttributeError) as error:
        raise MismatchedTorchvisionError(mismatch_message(error)) from error


def mismatch_message(error: BaseException) -> str:
    """The one line: both versions, torchvision's own error, and the command that reinstalls both."""
    try:
        vision = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        vision = "(not installed)"
    build = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    cause = " ".join(str(error).split())[:200]
    return (f"torch {torch.__version__} and torchvision {vision} are builds that do not match (importing "
            f"torchvision failed: {type(error).__name__}: {cause}); reinstall both from one index: python3 -m pip "
            f"install --force-reinstall torch torchvision --index-url {PYTORCH_INDEX}/{build}")


require_torchvision()
