"""NVIDIA's quantized EfficientNet checkpoints (NGC 21.03.0) made from seeded weights, and a float64 reference.

The keys are those of DLE's ``EfficientNet(quantized=True)``: the float model's (``tests/reference/parity``) with
1x1-convolution squeeze-and-excitation weights (DLE's TensorRT SE), plus the ``_amax`` buffer of every
``pytorch_quantization`` quantizer: ``<conv>._input_quantizer._amax`` (a scalar) and
``<conv>._weight_quantizer._amax`` (``[C, 1, 1, 1]``; ``[C, 1]`` for ``classifier.fc``), ``se.pooling`` and
``classifier.pooling``'s input quantizers, ``se.mul_a_quantizer``/``se.mul_b_quantizer`` and, in blocks with a
residual, ``residual_quantizer``.

:func:`reference_logits` is written from NVIDIA's module structure (DLE ``image_classification/models``) and
``pytorch_quantization``'s formula (``tensor_quant._tensor_quant``, narrow range), independently of the library.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from conftest import parity_fixture, seeded_checkpoint

STRIDES = (1, 2, 2, 2, 1, 2, 1)  # first block of each of DLE's layer1..layer7
BN_EPS = 1e-3


def pytorch_quantization_fake_quant(x: torch.Tensor, amax: torch.Tensor) -> torch.Tensor:
    """``_tensor_quant`` (num_bits 8, signed, narrow_range True), then ``outputs / scale``."""
    max_bound = 127.0
    scale = max_bound / amax
    zero = amax <= 1.0 / (1 << 24)
    scale = torch.where(zero, torch.zeros_like(scale), scale)
    outputs = torch.clamp((x * scale).round_(), -max_bound, max_bound)
    return outputs / torch.where(zero, torch.ones_like(scale), scale)


def _block_names(keys) -> list[str]:
    return sorted({m.group(0) for k in keys if (m := re.match(r"layer\d+\.block\d+", k))},
                  key=lambda name: tuple(int(n) for n in re.findall(r"\d+", name)))


def reference_logits(state: dict[str, torch.Tensor], x: torch.Tensor,
                     observed: dict[str, float] | None = None) -> torch.Tensor:
    """NVIDIA's quantized EfficientNet in eval mode on ``x``, from the NGC-layout ``state``.

    With ``observed`` (a dict), quantizers of activations record the largest magnitude they see into it
    and pass their input through (a max calibration run).
    """

    def quant(name: str, value: torch.Tensor) -> torch.Tensor:
        if observed is not None and not name.endswith("_weight_quantizer"):
            observed[name] = max(observed.get(name, 0.0), float(value.abs().max()))
            return value
        return pytorch_quantization_fake_quant(value, state[f"{name}._amax"])

    def conv(name: str, value: torch.Tensor, stride: int = 1, groups: int = 1) -> torch.Tensor:
        weight = state[f"{name}.weight"]
        return F.conv2d(quant(f"{name}._input_quantizer", value), quant(f"{name}._weight_quantizer", weight),
                         state.get(f"{name}.bias"), stride, (weight.shape[-1] - 1) // 2, 1, groups)

    def bn(name: str, value: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(value, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                            state[f"{name}.weight"], state[f"{name}.bias"], False, 0.0, BN_EPS)

    def pool(name: str, value: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(quant(f"{name}._input_quantizer", value), 1)

    out = F.silu(bn("stem.bn", conv("stem.conv", x, stride=2)))
    for block in _block_names(state):
        layer, index = (int(n) for n in re.findall(r"\d+", block))
        stride = STRIDES[layer - 1] if index == 0 else 1
        inputs = out
        if f"{block}.expand.conv.weight" in state:
            out = F.silu(bn(f"{block}.expand.bn", conv(f"{block}.expand.conv", out)))
        channels = state[f"{block}.depsep.conv.weight"].shape[0]
        out = F.silu(bn(f"{block}.depsep.bn", conv(f"{block}.depsep.conv", out, stride, groups=channels)))
        gate = conv(f"{block}.se.squeeze", pool(f"{block}.se.pooling", out))
        gate = torch.sigmoid(conv(f"{block}.se.expand", F.silu(gate)))
        out = quant(f"{block}.se.mul_a_quantizer", gate) * quant(f"{block}.se.mul_b_quantizer", out)
        out = bn(f"{block}.proj.bn", conv(f"{block}.proj.conv", out))
        if f"{block}.residual_quantizer._amax" in state or (observed is not None and index > 0):
            out = quant(f"{block}.residual_quantizer", inputs) + out
    out = F.silu(bn("features.bn", conv("features.conv", out)))
    out = pool("classifier.pooling", out).flatten(1)
    fc = state["classifier.fc.weight"]
    return F.linear(quant("classifier.fc._input_quantizer", out), quant("classifier.fc._weight_quantizer", fc),
                    state["classifier.fc.bias"])


def ngc_quant_state(variant: str = "b0", seed: int = 0) -> dict[str, torch.Tensor]:
    """A float64 NGC ``nvidia-efficientnet-quant-<variant>`` state dict: the float model's seeded weights and
    amax values from a max calibration on a seeded batch (activations 0.8x, weights 0.95x their maxima, so that
    some values clamp)."""
    fixture = parity_fixture(f"nvidia_efficientnet_{variant}")
    state = {key: value[:, :, None, None] if ".se." in key and value.dim() == 2 else value
             for key, value in seeded_checkpoint(fixture, torch.float64).items()}
    for key in [k for k in state if k.endswith(".weight") and state[k].dim() in (2, 4)]:
        weight = state[key]
        module = key[: -len(".weight")]
        state[f"{module}._weight_quantizer._amax"] = 0.95 * weight.abs().flatten(1).amax(1).reshape(
            (-1,) + (1,) * (weight.dim() - 1))
    observed: dict[str, float] = {}
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, 64, 64)))
    reference_logits(state, x, observed)
    for name, value in observed.items():
        state[f"{name}._amax"] = torch.tensor(0.8 * value, dtype=torch.float64)
    return state
