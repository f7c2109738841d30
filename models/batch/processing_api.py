"""This checkout's ``processing`` package, imported the way torch.hub imports it (through hubconf)."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from ..cli.entrypoints import hubconf


@functools.cache
def processing_utils() -> Any:
    """One ``ConvNetsProcessingUtils`` (what ``nvidia_convnets_processing_utils()`` returns)."""
    return hubconf().nvidia_convnets_processing_utils()


def processing_module(name: str) -> ModuleType:
    """A submodule of the processing package (``transforms``, ``decode``, ``labels``...)."""
    package = type(processing_utils()).__module__.rpartition(".")[0]
    return importlib.import_module(f"{package}.{name}")
