"""The hub entrypoints of this checkout, loaded through ``hubconf.py`` exactly as torch.hub does."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from .arguments import CommandError

REPO_ROOT = Path(__file__).resolve().parents[2]
UTILITY_ENTRYPOINTS = ("nvidia_convnets_processing_utils",)


@functools.cache
def hubconf() -> ModuleType:
    """This checkout's ``hubconf.py``, imported once."""
    spec = importlib.util.spec_from_file_location("hubconf", REPO_ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hub_module(name: str) -> ModuleType:
    """Module ``name`` of this checkout (``models.deploy.export``) imported as hubconf imports it, so that
    it shares the package of the models that the entrypoints build."""
    return importlib.import_module(f"{hubconf()._package().__name__}.{name}")


def entrypoint_names() -> list[str]:
    """Every public callable of hubconf (what ``torch.hub.list`` shows), in file order."""
    return [name for name, value in vars(hubconf()).items() if callable(value) and not name.startswith("_")]


def model_entrypoint_names() -> list[str]:
    return [name for name in entrypoint_names() if name not in UTILITY_ENTRYPOINTS]


def entrypoint(name: str) -> Callable[..., Any]:
    """The entrypoint ``name``; a CommandError lists the valid ones."""
    if name not in model_entrypoint_names():
        raise CommandError(f"--entrypoint {name!r} is not a model entrypoint; valid: "
                           f"{', '.join(model_entrypoint_names())}")
    return getattr(hubconf(), name)


def model_type_keyword(function: Callable[..., Any]) -> str | None:
    """The keyword through which ``function`` takes its variant (``model_type``, or NVIDIA's ``type``)."""
    parameters = inspect.signature(function).parameters
    return next((key for key in ("model_type", "type") if key in parameters), None)


def model_kwargs(args: argparse.Namespace, *, optimize: bool | None = None) -> dict[str, Any]:
    """The entrypoint's keyword arguments for the parsed model arguments."""
    function = entrypoint(args.entrypoint)
    kwargs: dict[str, Any] = {"weights": args.weights, "model_math": args.model_math, "device": args.device,
                              "optimize": getattr(args, "optimize", False) if optimize is None else optimize}
    if args.no_pretrained:  # otherwise the entrypoint's own default (lenet5: no published weights)
        kwargs["pretrained"] = False
    if args.model_type is not None:
        keyword = model_type_keyword(function)
        if keyword is None:
            raise CommandError(f"--model-type {args.model_type!r}: {args.entrypoint} has no variants")
        kwargs[keyword] = args.model_type
    return kwargs


def load_model(args: argparse.Namespace, *, optimize: bool | None = None) -> nn.Module:
    """The model of the parsed model arguments; bad values become a CommandError (exit code 2),
    weights that cannot be had a CommandError with exit code 1."""
    function = entrypoint(args.entrypoint)
    try:
        return function(**model_kwargs(args, optimize=optimize))
    except ValueError as error:
        raise CommandError(str(error)) from error
    except RuntimeError as error:
        raise CommandError(str(error), exit_code=1) from error
