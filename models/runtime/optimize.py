"""``optimize_for_inference``: an inference-only model tuned for one device and precision."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import InferenceOnlyError
from .fold import fold_conv_bn
from .input_cast import cast_inputs_to_model

_INFERENCE_ONLY = ("an optimize=True model is inference-only (BatchNorm folded into the convolutions, "
                   "gradients off); build the model with optimize=False to train or fine-tune it")


class CompileUnavailableWarning(UserWarning):
    """torch.compile failed or is unavailable: the eager-optimized model is used instead."""


def is_compile_failure(error: BaseException) -> bool:
    """Whether ``error``, raised while compiling, means torch.compile cannot compile this model.

    A warning raised as an exception (the caller's ``warnings.simplefilter("error")`` turning, say,
    torch's own DeprecationWarning on importing Inductor into an error) is not: it propagates to
    the caller, and the next call compiles again.
    """
    return isinstance(error, Exception) and not isinstance(error, Warning)


class CompiledModel(nn.Module):
    """A ``torch.compile``-d model that falls back to its eager self if compilation fails.

    Calls run without gradients and, with ``freezing``, under Inductor's freezing (CPU
    inference). ``eager`` is the (folded, cast) model; the first call that the compiled graph
    cannot run but the eager model can warns once (:class:`CompileUnavailableWarning`) and makes
    every later call eager. Errors of the eager model itself (a bad input) propagate unchanged.

    Moving or casting it (``.to("cuda")``, ``.half()``, ``.to(torch.bfloat16)``, ``.double()``...)
    casts the folded eager model and compiles anew for the new device and dtype (CUDA graphs on a
    GPU, freezing on a CPU); it never runs the graph compiled for the old ones (torch.compile's
    caches are reset: other compiled models of the process compile again at their next call).
    Casting to a wider
    dtype keeps the rounding of the narrower one: for full precision, load it again with
    ``model_math=``. ``.train(True)`` raises :class:`~models.errors.InferenceOnlyError`.
    """

    def __init__(self, eager: nn.Module, mode: str | None, freezing: bool = False) -> None:
        super().__init__()
        self.eager = eager
        self.pretrained_cfg = self.default_cfg = getattr(eager, "pretrained_cfg", None)  # timm's alias
        self._compile(mode, freezing)
        super().train(False)

    def _compile(self, mode: str | None, freezing: bool) -> None:
        self.mode = mode
        self.freezing = freezing
        # Not a registered submodule: it shares ``eager``'s parameters, state_dict stays ``eager.*``.
        object.__setattr__(self, "_compiled", torch.compile(self.eager, mode=mode, dynamic=False))
        self._failed = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._failed:
            return self.eager(*args, **kwargs)
        try:
            with torch.no_grad(), _inductor_config(freezing=self.freezing):
                return self._compiled(*args, **kwargs)
        except Exception as error:  # compilers fail in many ways; the eager model decides
            if not is_compile_failure(error):
                raise
            output = self.eager(*args, **kwargs)
            self._failed = True
            _warn_eager(error)
            return output

    def train(self, mode: bool = True) -> CompiledModel:
        """Only ``train(False)``/``eval()`` are possible; ``train(True)`` raises InferenceOnlyError."""
        if mode:
            raise InferenceOnlyError(f".train(True): {_INFERENCE_ONLY}")
        return super().train(False)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> CompiledModel:
        """Every ``.to()``/``.half()``/``.cuda()``... goes through here: recompile when the placement changed."""
        before = _placement(self.eager)
        super()._apply(fn, recurse)
        after = _placement(self.eager)
        if after != before and after is not None:
            # Dynamo's cache is kept per code object and, with frozen weights, its guards do not
            # see the new dtype or device: drop every compiled graph, then compile anew.
            torch.compiler.reset()
            try:
                self._compile(*compile_settings(*after))
            except Exception as error:  # as in optimize_for_inference: stay eager
                if not is_compile_failure(error):
                    raise
                self._failed = True
                _warn_eager(error)
        return self


def _placement(model: nn.Module) -> tuple[torch.device, torch.dtype] | None:
    """The device and dtype of ``model``'s first floating parameter (None: it has none)."""
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    return None if parameter is None else (parameter.device, parameter.dtype)


def compile_settings(device: torch.device, dtype: torch.dtype) -> tuple[str | None, bool]:
    """torch.compile's mode and Inductor freezing for ``device`` and ``dtype``: CUDA graphs
    ("reduce-overhead") on a GPU; on a CPU the default mode with freezing, except in float64,
    which oneDNN lacks."""
    if device.type == "cuda":
        return "reduce-overhead", False
    return None, dtype != torch.float64


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


def _refuse_training(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook of an eager-optimized model: a call in training mode raises."""
    if module.training:
        raise InferenceOnlyError(f"called in training mode: {_INFERENCE_ONLY}")


def fold_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision in which BatchNorm is folded for a model of ``dtype``: float64 stays float64,
    every other precision folds in float32 (half types are cast only after folding)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def optimize_for_inference(model: nn.Module, *, dtype: torch.dtype = torch.float32,
                           device: torch.device | str = "cpu", compile: bool = True) -> nn.Module:
    """An inference-only version of ``model`` for ``device`` and ``dtype``.

    Steps: eval mode; every provably adjacent Conv2d → BatchNorm2d pair folded into one
    convolution, in float32 (float64 for a float64 model), before any cast to ``dtype``;
    parameters moved to ``device`` and ``dtype``, 4-D weights channels_last, ``requires_grad``
    False; a forward pre-hook that casts a float batch of any dtype (e.g. float32) to ``dtype``
    and channels_last; then, unless ``compile`` is False, ``torch.compile`` at the first call of
    each input shape, run without gradients: on CUDA in mode "reduce-overhead" (CUDA graphs, which
    pay for the small fixed batches of latency-bound inference), on the CPU with Inductor's
    freezing (weights become constants: pre-packed oneDNN convolutions fused with their
    activations; not in float64, which oneDNN lacks). The first call of each shape pays for the
    compilation; benchmarks/RESULTS.md has the measured costs and speed-ups. The frozen weights
    take memory beside the eager ones.

    ``model`` itself is modified in place (its convolutions and BatchNorms are replaced) and is
    not usable for training afterwards: a call in training mode raises
    :class:`~models.errors.InferenceOnlyError`. The result is ``model`` when not compiled, else a
    :class:`CompiledModel` wrapping it, which recompiles itself when moved or cast; either has
    ``model``'s ``pretrained_cfg`` attribute. If torch.compile raises (now or at the first call:
    no C++ compiler, an unsupported operator), one :class:`CompileUnavailableWarning` naming the
    error is issued and the eager-optimized model is used. A warning that the caller's filters
    turn into an exception (``warnings.simplefilter("error")``) is not a compile failure: it
    propagates, and the model stays compiled (:func:`is_compile_failure`).
    """
    device = torch.device(device)
    model.eval()
    placement = _placement(model)
    if placement is not None:
        model.to(fold_dtype(placement[1]))
    fold_conv_bn(model)
    model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    model.requires_grad_(False)
    cast_inputs_to_model(model)
    if _refuse_training not in model._forward_pre_hooks.values():
        model.register_forward_pre_hook(_refuse_training)
    if not compile:
        return model
    try:
        return CompiledModel(model, *compile_settings(device, dtype))
    except Exception as error:  # any compile failure means: stay eager
        if not is_compile_failure(error):
            raise
        _warn_eager(error)
        return model
