"""The hub entrypoints of this checkout: ``hubconf.py`` imported once, entrypoints looked up by name.

The command line, smoke, the batch engines' workers, the benchmarks and the tests all find
entrypoints here, so each of them calls the very functions that ``torch.hub.load`` calls.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import UnknownEntrypointError
from .repository import REPO_ROOT

PACKAGE = __name__.split(".")[0]
"""The private package that hubconf mounts over this checkout (``convnets_hub``)."""
UTILITY_ENTRYPOINTS = ("nvidia_convnets_processing_utils",)


@functools.cache
def hubconf() -> ModuleType:
    """This checkout's ``hubconf.py``, imported once, as ``<private package>.hubconf``."""
    return importlib.import_module(f"{PACKAGE}.hubconf")


def foreign_hubconf(repo_root: Path) -> ModuleType:
    """The ``hubconf.py`` of another checkout (a GitHub download), executed as torch.hub executes it."""
    if repo_root.resolve() == REPO_ROOT:
        return hubconf()
    spec = importlib.util.spec_from_file_location("hubconf", repo_root / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entrypoint_names(module: ModuleType | None = None) -> list[str]:
    """Every public callable of hubconf (what ``torch.hub.list`` shows), in file order."""
    return [name for name, value in vars(module or hubconf()).items()
            if callable(value) and not name.startswith("_")]


def model_entrypoint_names(module: ModuleType | None = None) -> list[str]:
    """The entrypoints that return a model (all but the processing utilities)."""
    return [name for name in entrypoint_names(module) if name not in UTILITY_ENTRYPOINTS]


def entrypoint(name: str) -> Callable[..., Any]:
    """The model entrypoint ``name``; an UnknownEntrypointError lists the valid ones."""
    if name not in model_entrypoint_names():
        raise UnknownEntrypointError(f"{name!r} is not a model entrypoint; valid: "
                                     f"{', '.join(model_entrypoint_names())}")
    return getattr(hubconf(), name)


def model_type_keyword(function: Callable[..., Any]) -> str | None:
    """The keyword through which ``function`` takes its variant (``model_type``, or NVIDIA's ``type``)."""
    parameters = inspect.signature(function).parameters
    return next((key for key in ("model_type", "type") if key in parameters), None)
