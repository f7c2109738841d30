"""What an exported ONNX file says about its model (``metadata_props``): enough to classify with onnxruntime alone.

Each value is JSON (``json.loads`` gives it back): ``class_names`` (the output's classes, in order),
``input_size`` ([C, H, W]), ``mean`` and ``std`` (per channel, for pixels in [0, 1]), ``interpolation``
("bilinear", "bicubic") and ``crop_pct`` (resize the shorter side to H / crop_pct, then centre-crop
H x W), and the ``entrypoint``, ``model_type`` and ``weights`` it was exported from.
"""

from __future__ import annotations

import json
from typing import Any

from torch import nn

from .names import INPUT_NAME, OUTPUT_NAME, class_labels

PREPROCESSING_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")


def onnx_metadata(model: nn.Module) -> dict[str, str]:
    """The ``metadata_props`` of ``model``'s ONNX file: key -> JSON text."""
    cfg = model.pretrained_cfg
    values: dict[str, Any] = {"class_names": list(class_labels(model)), "input_name": INPUT_NAME,
                              "output_name": OUTPUT_NAME}
    values.update({key: list(cfg[key]) if isinstance(cfg[key], tuple) else cfg[key] for key in PREPROCESSING_KEYS})
    values.update(entrypoint=cfg.get("entrypoint"), model_type=cfg.get("model_type"),
                  weights=cfg.get("id") or cfg.get("checkpoint"))
    return {key: json.dumps(value) for key, value in values.items()}


def onnx_metadata_suffix(model: nn.Module) -> bytes:
    """:func:`onnx_metadata` as bytes to append to a serialised ONNX model without ``metadata_props``: protobuf
    reads a message's fields one after another and appends repeated ones, so the file then parses as
    the model with these entries, and its weights are neither parsed nor serialised again (that took
    2 of VGG16-BN's 8 s of export)."""
    import onnx

    suffix = onnx.ModelProto()
    onnx.helper.set_model_props(suffix, onnx_metadata(model))
    return suffix.SerializeToString()
