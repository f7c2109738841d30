"""``optimize_for_inference``: an inference-only model tuned for one device and precision."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import nn

from .fold import fold_conv_bn
from .precision import cast_inputs_to_model


class CompileUnavailableWarning(UserWarning):
    """torch.compile failed or is unavailable: the eager-optimized model is used instead."""


class CompiledModel(nn.Module):
    """A ``torch.compile``-d model that falls back to its eager self if compilation fails.

    Calls run without gradients and, with ``freezing``, under Inductor's freezing (CPU
    inference). ``eager`` is the (folded, cast) model; the first call that the compiled graph
    cannot run but the eager model can warns once (:class:`CompileUnavailableWarning`) and makes
    every later call eager. Errors of the eager model itself (a bad input) propagate unchanged.
    """

    def __init__(self, eager: nn.Module, mode: str | None, freezing: bool = False) -> None:
        super().__init__()
        self.eager = eager
        self.mode = mode
        self.freezing = freezing
        self.pretrained_cfg = getattr(eager, "pretrained_cfg", None)
        # Not a registered submodule: it shares ``eager``'s parameters, state_dict stays ``eager.*``.
        object.__setattr__(self, "_compiled", torch.compile(eager, mode=mode, dynamic=False))
        self._failed = False
        self.train(eager.training)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._failed:
            return self.eager(*args, **kwargs)
        try:
            with torch.no_grad(), _inductor_config(freezing=self.freezing):
                return self._compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - compilers fail in many ways; the eager model decides
            output = self.eager(*args, **kwargs)
            self._failed = True
            _warn_eager(error)
            return output


def _inductor_config(freezing: bool) -> contextlib.AbstractContextManager:
    """Inductor's settings for the calls that may compile: freezing turns the (frozen, inference-only)
    weights into constants, so that convolutions get pre-packed oneDNN weights fused with their
    activations and residual adds on the CPU. It only applies where gradients are off."""
    if not freezing:
        return contextlib.nullcontext()
    from torch._inductor import config

    return config.patch(freezing=True)


def _warn_eager(error: BaseException) -> None:
    warnings.warn(f"torch.compile is unavailable ({type(error).__name__}: {error}); "
                  "using the eager-optimized model", CompileUnavailableWarning, stacklevel=3)


def optimize_for_inference(model: nn.Module, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str = "cpu", compile: bool = True) -> nn.Module:
    """An inference-only version of ``model`` for ``device`` and ``dtype``.

    Steps: eval mode; every provably adjacent Conv2d → BatchNorm2d pair folded into one
    convolution (in float32 or ``model``'s own precision, before any cast); parameters moved to
    ``device`` and ``dtype``, 4-D weights channels_last, ``requires_grad`` False; a forward
    pre-hook that casts a float batch of any dtype (e.g. float32) to ``dtype`` and channels_last;
    then, unless ``compile`` is False, ``torch.compile`` at the first call of each input shape,
    run without gradients: on CUDA in mode "reduce-overhead" (CUDA graphs, which pay for the small
    fixed batches of latency-bound inference), on the CPU with Inductor's freezing (weights become
    constants: pre-packed oneDNN convolutions fused with their activations; not in float64, which
    oneDNN lacks). On 2 CPU cores the first call of a ResNeXt-101 takes about 15 s and later
    calls at batch 1 are 1.37x as fast as timm's eager model (benchmarks/RESULTS.md); the frozen
    weights take memory beside the eager ones.

    ``model`` itself is modified in place (its convolutions and BatchNorms are replaced) and is
    not usable for training afterwards. The result is ``model`` when not compiled, else a
    :class:`CompiledModel` wrapping it; either has ``model``'s ``pretrained_cfg`` attribute. If
    torch.compile raises (now or at the first call: no C++ compiler, an unsupported operator),
    one :class:`CompileUnavailableWarning` is issued and the eager-optimized model is used.
    """
    device = torch.device(device)
    model.eval()
    fold_conv_bn(model)
    model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    model.requires_grad_(False)
    cast_inputs_to_model(model)
    if not compile:
        return model
    try:
        if device.type == "cuda":
            return CompiledModel(model, mode="reduce-overhead")
        return CompiledModel(model, mode=None, freezing=dtype != torch.float64)  # oneDNN has no float64
    except Exception as error:  # noqa: BLE001 - any failure of torch.compile means: stay eager
        _warn_eager(error)
        return model
