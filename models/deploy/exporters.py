"""A hub model as a file that runs without this repository: ONNX, TorchScript or torch.export's ExportedProgram.

Every format takes ``[N, C, H, W]`` with a dynamic batch axis ``N`` (C, H, W from ``pretrained_cfg``)
and returns the logits ``[N, classes]``, named ``input`` and ``logits`` where the format names tensors.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path
from typing import IO

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..files import write_atomically
from ..runtime.int8 import Int8Model
from ..runtime.optimize import CompiledModel
from .formats import FORMATS
from .names import INPUT_NAME, OUTPUT_NAME
from .onnx_metadata import onnx_metadata_suffix

DEFAULT_OPSET = 17
DYNAMO_OPSET = 18  # the torch.export-based exporter starts at opset 18
# Exports trace a batch of this size: a batch of 1 can let a tracer bake the batch size into reshapes.
EXAMPLE_BATCH = 2
MAX_BATCH = 1 << 16


def example_input(model: nn.Module, batch: int = EXAMPLE_BATCH) -> torch.Tensor:
    """A random batch of the model's input size, dtype and device."""
    parameter = next(model.parameters())
    return torch.randn(batch, *model.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(0)).to(
        device=parameter.device, dtype=parameter.dtype)


def export_model(model: nn.Module, path: str | os.PathLike, export_format: str, *, opset: int | None = None,
                 dynamo: bool = False) -> Path:
    """Write ``model`` (a hub model, not ``optimize=True``'s compiled one) to ``path`` in ``export_format``.

    ``opset`` (default 17, or 18 with ``dynamo``) and ``dynamo`` (torch's newer torch.export-based ONNX
    exporter) apply to ONNX only. The file is replaced atomically (:mod:`models.files`): the previous
    one stays whole until the new one is complete, and a link at ``path`` is replaced, not written
    through. Returns the path written.
    """
    if export_format not in FORMATS:
        raise InvalidArgumentError(f"format {export_format!r} is not one of {', '.join(FORMATS)}")
    if isinstance(model, CompiledModel):
        raise InvalidArgumentError("the model was compiled by optimize=True; export the model built without it")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, Int8Model):
        export_int8_onnx(model, path, export_format, opset=opset, dynamo=dynamo)
        return path
    model = model.eval()
    with torch.no_grad():
        if export_format == "onnx":
            write = functools.partial(export_onnx, model, opset=opset or (DYNAMO_OPSET if dynamo else DEFAULT_OPSET),
                                      dynamo=dynamo)
        elif export_format == "torchscript":
            write = functools.partial(export_torchscript, model)
        else:
            write = functools.partial(export_program, model)
        write_atomically(path, write)
    return path


def export_onnx(model: nn.Module, file: IO[bytes], *, opset: int = DEFAULT_OPSET, dynamo: bool = False) -> None:
    """ONNX with the batch axis named ``batch``, and the model's class names and preprocessing in its
    ``metadata_props`` (:mod:`.onnx_metadata`).

    By default through torch's TorchScript-based exporter, which torch deprecates but which exports a
    ResNeXt101 here five times faster than the torch.export-based one (``dynamo=True``); both give
    the same logits. Tracer warnings are silenced: they flag Python checks on the input's channel
    count, and the tests compare the exported logits with the model's at several batch sizes.
    """
    metadata = onnx_metadata_suffix(model)  # before the export: without the onnx package this fails at once
    example = example_input(model)
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        # torch 2.14's exporters deprecate their own internals (setup_onnx_logging): torch's to act on, not the user's
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
            proto = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                      dynamic_shapes=({0: batch},), verbose=False, **names).model_proto
        else:
            exported = io.BytesIO()
            torch.onnx.export(model, (example,), exported, dynamo=False, opset_version=opset,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names)
    # neither exporter writes metadata_props (tests/models/deploy/test_onnx_metadata.py): ours follow the model's bytes
    file.write(proto.SerializeToString() if dynamo else exported.getbuffer())
    file.write(metadata)


def export_int8_onnx(model: Int8Model, path: Path, export_format: str, *, opset: int | None, dynamo: bool) -> None:
    """A model_math="int8" model: its quantized QDQ graph as it runs (ONNX opset 17; ONNX Runtime, TensorRT)."""
    if export_format != "onnx" or opset not in (None, model.opset) or dynamo:
        raise InvalidArgumentError(f"a model_math='int8' model exports as ONNX opset {model.opset} only (its quantized "
                                   f"graph), not as format={export_format!r}, opset={opset!r}, dynamo={dynamo!r}")
    write_atomically(path, lambda file: file.write(model.onnx_model))


def export_torchscript(model: nn.Module, file: IO[bytes]) -> None:
    """A traced TorchScript module (``torch.jit.load(path)``; LibTorch's and Triton's ``pytorch_libtorch``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.* is deprecated", category=FutureWarning)
        traced = torch.jit.trace(model, example_input(model))
        torch.jit.save(traced, file)


def export_program(model: nn.Module, file: IO[bytes]) -> None:
    """torch.export's ExportedProgram (``torch.export.load(path).module()``), batch axis dynamic."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(model, (example_input(model),), dynamic_shapes=({0: batch},))
    torch.export.save(program, file)
