"""8-bit fake quantization as NVIDIA's ``pytorch_quantization`` computes it, and its ONNX QuantizeLinear/DequantizeLinear.

NVIDIA trains its quantized EfficientNets with ``pytorch_quantization`` (TensorRT's tools/pytorch-quantization),
which cannot be installed from the package registries. Its arithmetic, reproduced here, is that of
``tensor_quant._tensor_quant`` followed by ``FakeTensorQuantFunction`` (v2.1, TensorRT OSS 21.02, which made
the NGC 21.03.0 checkpoints)::

    bound   = 2 ** (num_bits - 1) - 1                      # 127 for 8 bits
    scale   = bound / amax                                 # 0 where amax <= 2 ** -24
    q       = clamp(round(x * scale), -bound, bound)       # narrow range: [-127, 127]; round: half to even
    fake(x) = q / scale                                    # scale taken as 1 where amax <= 2 ** -24

with ``amax`` one value per tensor (activations: ``_input_quantizer``) or per output channel (weights:
``_weight_quantizer``, axis 0, stored as ``[C, 1, 1, 1]`` or ``[C, 1]``). A quantizer whose ``_amax`` is NaN
(a model built without weights) quantizes with the tensor's own maximum, as ``pytorch_quantization`` does for a
quantizer without ``_amax``.

Exported to ONNX, each quantizer becomes QuantizeLinear/DequantizeLinear with scale ``amax / 127`` and an int8 zero
point of 0 (per-axis on axis 0 for weights), the QDQ form that TensorRT builds int8 engines from and that ONNX
Runtime runs in int8, as ``pytorch_quantization``'s own exporter writes it. ONNX's int8 range is [-128, 127]: a
value below ``-amax`` by more than half a step becomes -128 there and -127 here, one step apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_BITS = 8
BOUND = 2 ** (NUM_BITS - 1) - 1
ZERO_AMAX = 1.0 / (1 << 24)  # pytorch_quantization's epsilon: an amax at most this quantizes to 0


def fake_quantize(x: torch.Tensor, amax: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the signed 8-bit narrow-range grid of ``amax`` (broadcast to ``x``), in ``x``'s dtype.

    16-bit inputs are computed in float32, as ``pytorch_quantization`` does, and cast back.
    """
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    values, amax = x.to(compute), amax.to(compute)
    zero = amax <= ZERO_AMAX
    scale = torch.where(zero, torch.zeros_like(amax), BOUND / amax)
    quantized = torch.clamp(torch.round(values * scale), -BOUND, BOUND)
    return (quantized / torch.where(zero, torch.ones_like(scale), scale)).to(x.dtype)


class _QuantizeDequantize(torch.autograd.Function):
    """:func:`fake_quantize` in eager mode; QuantizeLinear/DequantizeLinear in torch's TorchScript-based ONNX export."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, amax: torch.Tensor, axis: int | None) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1) if axis is not None else ()
        return fake_quantize(x, amax.reshape(shape))

    @staticmethod
    def symbolic(g, x, amax, axis):
        scale = g.op("Div", amax, g.op("Constant", value_t=torch.tensor(float(BOUND))))
        zero_point = g.op("Cast", g.op("Mul", amax, g.op("Constant", value_t=torch.tensor(0.0))),
                          to_i=torch.onnx.TensorProtoDataType.INT8)
        attributes = {} if axis is None else {"axis_i": axis}
        quantized = g.op("QuantizeLinear", x, scale, zero_point, **attributes)
        return g.op("DequantizeLinear", quantized, scale, zero_point, **attributes)


class TensorQuantizer(nn.Module):
    """One quantizer: ``_amax`` a scalar (``per_channel`` False) or one value per channel of axis 0.

    Its state-dict key is ``_amax``, as in NVIDIA's checkpoints; ``channels`` sizes the per-channel buffer and
    ``weight_dim`` its trailing singleton axes (4 for a convolution's weight, 2 for a linear layer's).
    """

    def __init__(self, channels: int | None = None, weight_dim: int = 4) -> None:
        super().__init__()
        self.per_channel = channels is not None
        shape = (channels,) + (1,) * (weight_dim - 1) if channels is not None else ()
        self.register_buffer("_amax", torch.full(shape, float("nan")))
        # Whether ``_amax`` holds values (no NaN): a Python flag, so that tracers (torch.export, torch.compile)
        # see no data-dependent branch. Set by loading a state dict and by :meth:`set_amax`.
        self.calibrated = False

    def set_amax(self, amax: torch.Tensor | float) -> None:
        """Calibrate: use ``amax`` (broadcast to the buffer's shape) from now on; NaN makes it dynamic again."""
        with torch.no_grad():
            self._amax.copy_(torch.as_tensor(amax).expand_as(self._amax))
        self._update_calibrated()

    def _update_calibrated(self) -> None:
        self.calibrated = not self._amax.is_meta and not bool(torch.isnan(self._amax).any())

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._update_calibrated()

    def amax_for(self, x: torch.Tensor) -> torch.Tensor:
        """The amax used for ``x``: the stored one, or ``x``'s own maximum (per channel) if it is NaN."""
        if self.calibrated:
            return self._amax
        if not self.per_channel:
            return x.detach().abs().amax()
        return x.detach().abs().flatten(1).amax(1).reshape(self._amax.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_meta:  # shapes only (pool_size, meta builds): rounding changes none, and costs seconds on meta
            return x
        amax = self.amax_for(x)
        if torch.onnx.is_in_onnx_export():
            return _QuantizeDequantize.apply(x, amax.reshape(-1) if self.per_channel else amax.reshape(()),
                                             0 if self.per_channel else None)
        return fake_quantize(x, amax)

    def extra_repr(self) -> str:
        kind = f"per-channel ({self._amax.shape[0]})" if self.per_channel else "per-tensor"
        return f"8-bit narrow {kind}" + ("" if self.calibrated else ", uncalibrated (dynamic amax)")


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` on a fake-quantized input (per tensor) with fake-quantized weights (per output channel);
    the bias stays in floating point."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._input_quantizer = TensorQuantizer()
        self._weight_quantizer = TensorQuantizer(self.out_channels, weight_dim=4)

    @classmethod
    def from_float(cls, conv: nn.Conv2d) -> QuantConv2d:
        """A quantized copy of ``conv`` (same configuration and weights, uncalibrated quantizers)."""
        quantized = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                        padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                        padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
        quantized.load_state_dict(conv.state_dict(), strict=False)
        return quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self._input_quantizer(x), self._weight_quantizer(self.weight), self.bias)


class QuantLinear(nn.Linear):
    """``nn.Linear`` on a fake-quantized input (per tensor) with fake-quantized weights (per output row)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._input_quantizer = TensorQuantizer()
        self._weight_quantizer = TensorQuantizer(self.out_features, weight_dim=2)

    @classmethod
    def from_float(cls, linear: nn.Linear) -> QuantLinear:
        """A quantized copy of ``linear`` (same weights, uncalibrated quantizers)."""
        quantized = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                        device=linear.weight.device, dtype=linear.weight.dtype)
        quantized.load_state_dict(linear.state_dict(), strict=False)
        return quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._input_quantizer(x), self._weight_quantizer(self.weight), self.bias)


class QuantGlobalAvgPool(nn.Module):
    """Global average pooling of a fake-quantized input (``pytorch_quantization``'s QuantAdaptiveAvgPool2d(1)),
    flattened to ``[N, C]`` when ``flatten``; timm's ``pool_type`` "avg"."""

    pool_type = "avg"

    def __init__(self, flatten: bool = False) -> None:
        super().__init__()
        self.flatten = flatten
        self._input_quantizer = TensorQuantizer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(self._input_quantizer(x), 1)
        return pooled.flatten(1) if self.flatten else pooled

    def feat_mult(self) -> int:
        return 1
