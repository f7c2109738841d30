"""The model options of the command line (--entrypoint, --model-type, --weights, ...), turned into a model."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import UnknownEntrypointError
from ..hub import create, entrypoint
from .arguments import CommandError
from .extras import require

if TYPE_CHECKING:
    from torch import nn


def check_entrypoint(name: str) -> None:
    """A CommandError listing the valid entrypoints unless ``--entrypoint name`` is one."""
    try:
        entrypoint(name)
    except UnknownEntrypointError as error:
        raise CommandError(f"--entrypoint {error}") from error


def model_kwargs(args: argparse.Namespace, *, optimize: bool | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`..hub.create` for the parsed model options."""
    check_entrypoint(args.entrypoint)
    kwargs: dict[str, Any] = {"weights": args.weights, "model_math": args.model_math, "device": args.device,
                              "optimize": getattr(args, "optimize", False) if optimize is None else optimize,
                              "model_type": args.model_type}
    if getattr(args, "calibration", None) is not None:
        kwargs["calibration"] = args.calibration
    if args.no_pretrained:  # otherwise the entrypoint's own default (lenet5: no published weights)
        kwargs["pretrained"] = False
    return kwargs


def load_model(args: argparse.Namespace, *, optimize: bool | None = None) -> nn.Module:
    """The model of the parsed model options; bad values become a CommandError (exit code 2),
    weights that cannot be had a CommandError with exit code 1."""
    if str(getattr(args, "model_math", "")).lower() == "int8":
        require("--model-math int8", "onnx", "onnxruntime")
    kwargs = model_kwargs(args, optimize=optimize)
    try:
        return create(args.entrypoint, **kwargs)
    except ValueError as error:
        raise CommandError(str(error)) from error
    except RuntimeError as error:
        raise CommandError(str(error), exit_code=1) from error
