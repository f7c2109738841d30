"""The model arguments of the command line, turned into an entrypoint call."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..entrypoints import entrypoint, model_type_keyword
from ..errors import UnknownEntrypointError
from .arguments import CommandError
from .extras import require

if TYPE_CHECKING:
    from torch import nn


def model_entrypoint(name: str):
    """The entrypoint of ``--entrypoint name``; a CommandError lists the valid ones."""
    try:
        return entrypoint(name)
    except UnknownEntrypointError as error:
        raise CommandError(f"--entrypoint {error}") from error


def model_kwargs(args: argparse.Namespace, *, optimize: bool | None = None) -> dict[str, Any]:
    """The entrypoint's keyword arguments for the parsed model arguments."""
    function = model_entrypoint(args.entrypoint)
    kwargs: dict[str, Any] = {"weights": args.weights, "model_math": args.model_math, "device": args.device,
                              "optimize": getattr(args, "optimize", False) if optimize is None else optimize}
    if getattr(args, "calibration", None) is not None:
        kwargs["calibration"] = args.calibration
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
    function = model_entrypoint(args.entrypoint)
    if str(getattr(args, "model_math", "")).lower() == "int8":
        require("--model-math int8", "onnx", "onnxruntime")
    try:
        return function(**model_kwargs(args, optimize=optimize))
    except ValueError as error:
        raise CommandError(str(error)) from error
    except RuntimeError as error:
        raise CommandError(str(error), exit_code=1) from error
