"""A Triton Inference Server model repository for one hub model: config, model file and class labels.

Layout (what ``tritonserver --model-repository DIR`` loads)::

    DIR/<name>/config.pbtxt
    DIR/<name>/labels.txt          the output's label_filename: the classification extension's names
    DIR/<name>/1/model.onnx        (or model.pt for platform pytorch_libtorch)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..files import write_text_atomically
from .exporters import export_model
from .names import INPUT_NAME, OUTPUT_NAME, class_labels, deployed_name

DEFAULT_MAX_BATCH_SIZE = 64
LABELS_FILE = "labels.txt"
# platform, model file, input and output names per export format; LibTorch models have no tensor
# names, and Triton's convention <name>__<index> maps them to the forward's arguments and results.
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx", INPUT_NAME, OUTPUT_NAME),
             "torchscript": ("pytorch_libtorch", "model.pt", "INPUT__0", "OUTPUT__0")}
TRITON_TYPES = {torch.float32: "TYPE_FP32", torch.float16: "TYPE_FP16", torch.bfloat16: "TYPE_BF16",
                torch.float64: "TYPE_FP64"}


def write_triton_repository(model: nn.Module, directory: str | os.PathLike, export_format: str = "onnx", *,
                            max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, opset: int | None = None,
                            dynamo: bool = False) -> Path:
    """Export ``model`` into the Triton model repository ``directory``; returns the model's folder.

    The model is named :func:`deployed_name` (``nvidia_gpunet_GPUNet-0``); its instance group
    follows the device of the model's weights (KIND_CPU, or KIND_GPU on that GPU).
    """
    if export_format not in PLATFORMS:
        raise InvalidArgumentError(f"format {export_format!r} cannot go into a Triton repository; "
                                   f"use one of {', '.join(PLATFORMS)}")
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise InvalidArgumentError(f"max_batch_size={max_batch_size!r} must be a positive integer")
    folder = Path(directory) / deployed_name(model)
    _, file_name, _, _ = PLATFORMS[export_format]
    export_model(model, folder / "1" / file_name, export_format, opset=opset, dynamo=dynamo)
    write_text_atomically(folder / LABELS_FILE, "\n".join(class_labels(model)) + "\n")
    write_text_atomically(folder / "config.pbtxt", triton_config(model, export_format, max_batch_size))
    return folder


def triton_config(model: nn.Module, export_format: str, max_batch_size: int, *,
                  device: torch.device | None = None, dtype: torch.dtype | None = None) -> str:
    """The text of ``config.pbtxt`` (Triton's ModelConfig protobuf in text format).

    The input and output data type is ``dtype`` and the instance group ``device``'s, by default
    those of the model's weights (an fp16 model on ``cuda:1``: TYPE_FP16, KIND_GPU on GPU 1).
    """
    platform, file_name, input_name, output_name = PLATFORMS[export_format]
    parameter = next(model.parameters(), torch.zeros(()))  # an int8 model has none: float32 on the CPU
    data_type = TRITON_TYPES[dtype or parameter.dtype]
    dims = ", ".join(str(size) for size in model.pretrained_cfg["input_size"])
    return f"""name: "{deployed_name(model)}"
platform: "{platform}"
default_model_filename: "{file_name}"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{input_name}"
    data_type: {data_type}
    dims: [ {dims} ]
  }}
]
output [
  {{
    name: "{output_name}"
    data_type: {data_type}
    dims: [ {model.pretrained_cfg["num_classes"]} ]
    label_filename: "{LABELS_FILE}"
  }}
]
dynamic_batching {{ }}
instance_group [
  {{
{_instance_group(device or parameter.device)}
  }}
]
"""


def _instance_group(device: torch.device) -> str:
    if device.type == "cuda":
        return f"    count: 1\n    kind: KIND_GPU\n    gpus: [ {device.index or 0} ]"
    return "    count: 1\n    kind: KIND_CPU"
