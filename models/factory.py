"""The one path every model entrypoint takes: build, resolve weights, load, describe."""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..processing.transforms import PREPROCESS_KEYS
from .errors import InvalidArgumentError, WeightsUnavailableError
from .registry import ALIASES, SPECS, ModelSpec
from .runtime.input_cast import cast_inputs_to_model
from .runtime.optimize import fold_dtype, optimize_for_inference
from .runtime.precision import (
    parse_device,
    parse_model_math,
    warn_if_emulated,
)
from .weights.checkpoint import (
    extract_state_dict,
    load_into,
    read_checkpoint,
    rename_keys,
)
from .weights.finetuned import FinetunedCheckpoint, recognise_finetuned
from .weights.manifest import Manifest, WeightsEntry, load_manifest
from .weights.sources import download_url, is_offline, resolve_weights_file


class FreshClassifierWarning(UserWarning):
    """Pretrained weights were loaded without their classifier, which is freshly initialised."""


def create_model(entrypoint: str, *, pretrained: bool = True, progress: bool = True,
                 weights: str | os.PathLike | None = None, model_math: str = "fp32",
                 device: str | torch.device | None = None, optimize: bool = False, **kwargs: Any) -> nn.Module:
    """Build ``entrypoint``'s model, load its weights, attach ``pretrained_cfg``, set precision and device.

    With ``optimize=True`` the result is :func:`optimize_for_inference`'s inference-only model
    (weights loaded and BatchNorm folded in float32, or float64 for "fp64", then cast);
    otherwise the model (in training mode) is moved to ``device`` and ``model_math`` and accepts a
    float batch of any dtype.
    """
    dtype = parse_model_math(model_math)
    target = parse_device(device)
    warn_if_emulated(dtype, target)
    if not isinstance(optimize, bool):
        raise InvalidArgumentError(f"optimize={optimize!r} must be True or False")
    name = ALIASES.get(entrypoint, entrypoint)
    spec = SPECS[name]
    _check_keywords(entrypoint, spec, kwargs)
    model_type = None
    if spec.canonical_type is not None:
        kwargs["model_type"] = model_type = spec.canonical_type(kwargs["model_type"])
    manifest = load_manifest()
    entry, checkpoint = _select_weights(name, spec, model_type, pretrained, weights, progress, manifest)
    state, finetuned = (None, None) if checkpoint is None else _read_weights(checkpoint, entry, spec)
    if finetuned is not None:
        kwargs = _finetuned_kwargs(entrypoint, name, model_type, finetuned, checkpoint, kwargs)
    pretrained_build = state is not None and (finetuned is None or finetuned.pretrained_build)
    model = spec.build(**(_pretrained_kwargs(entrypoint, spec, entry, kwargs) if pretrained_build else kwargs))
    # Loaded in the model's precision, so that a float64 checkpoint keeps it; with optimize=True
    # in the precision of folding (float32 for a half type), cast to ``dtype`` only after folding.
    model.to(fold_dtype(dtype) if optimize else dtype)
    if pretrained_build and finetuned is not None and spec.after_load is not None:
        spec.after_load(model, kwargs)  # as it was before its fine-tuning
    if state is not None:
        _load_checkpoint(model, state, checkpoint)
        if pretrained_build and finetuned is None and spec.after_load is not None:
            spec.after_load(model, kwargs)
    classifier_name, classifier = classifier_of(model)
    described = entry or manifest.default(name, model_type)
    preprocessing = (finetuned.preprocessing if finetuned else
                     described.preprocessing if described else spec.preprocessing(model_type))
    # A user's own file is preprocessed as the published weights are, but their metrics are not
    # its own; an untrained model keeps them as the figures of its architecture's default weights.
    metrics = None if checkpoint is not None and entry is None else (described.metrics if described else None)
    model.pretrained_cfg = {
        **{key: tuple(value) if isinstance(value, list) else value
           for key, value in preprocessing.items() if key in PREPROCESS_KEYS},
        "num_classes": classifier.out_features,
        "label_names": (finetuned.class_names if finetuned and finetuned.num_classes == classifier.out_features
                        else None),
        "classifier": classifier_name,
        "id": entry.id if entry else None,
        "metrics": metrics,
        "entrypoint": entrypoint,
        "model_type": model_type,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
    }
    if optimize:
        return optimize_for_inference(model, dtype=dtype, device=target)
    return cast_inputs_to_model(model.to(device=target, dtype=dtype))


def classifier_of(model: nn.Module) -> tuple[str, nn.Linear]:
    """The classification layer: the last ``nn.Linear`` of the model, with its name."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]


def _check_keywords(entrypoint: str, spec: ModelSpec, kwargs: dict[str, Any]) -> None:
    accepted = inspect.signature(spec.build).parameters
    for key in kwargs:
        if key not in accepted:
            raise TypeError(f"{entrypoint}() got an unexpected keyword argument {key!r}; "
                            f"it accepts pretrained, progress, weights, model_math, device, optimize, "
                            f"{', '.join(accepted)}")


def _pretrained_kwargs(entrypoint: str, spec: ModelSpec, entry: WeightsEntry | None,
                       kwargs: dict[str, Any]) -> dict[str, Any]:
    """The build options with those the checkpoints need (the user may not set these otherwise) and,
    for a manifest entry, its classifier size unless the user asks for another."""
    for key, value in spec.pretrained_build_kwargs.items():
        if key in kwargs and kwargs[key] != value:
            raise InvalidArgumentError(f"{entrypoint}({key}={kwargs[key]!r}) cannot load pretrained weights, "
                                       f"which need {key}={value!r}; use pretrained=False")
    head = {"num_classes": entry.num_classes} if entry is not None else {}
    return {**head, **kwargs, **spec.pretrained_build_kwargs}


def _select_weights(entrypoint: str, spec: ModelSpec, model_type: str | None, pretrained: bool,
                    weights: str | os.PathLike | None, progress: bool,
                    manifest: Manifest) -> tuple[WeightsEntry | None, Path | None]:
    """The manifest entry (if any) and the local file of the weights to load (None: no weights)."""
    if weights is None:
        if not pretrained:
            return None, None
        entry = manifest.default(entrypoint, model_type)
        if entry is None:
            raise InvalidArgumentError(f"{entrypoint} has no published weights in {manifest.path}; "
                                       "use pretrained=False or weights=<checkpoint path or URL>"
                                       + (f", or {spec.no_weights_hint}" if spec.no_weights_hint else ""))
        return entry, resolve_weights_file(entry, progress)
    if not pretrained and manifest.default(entrypoint, model_type) is not None:
        raise InvalidArgumentError(f"weights={weights!r} was given with pretrained=False; drop one of them")
    text = os.fspath(weights)
    if text in manifest:
        entry = manifest.get(text, entrypoint, model_type)
        return entry, resolve_weights_file(entry, progress)
    if text.startswith(("http://", "https://")):
        if is_offline():
            raise WeightsUnavailableError(f"weights={text!r} is a URL and CONVNETS_HUB_OFFLINE=1 forbids "
                                          "downloading it; pass a local path instead")
        return None, download_url(text, progress)
    if Path(text).expanduser().is_file():
        return None, Path(text).expanduser()
    return manifest.get(text, entrypoint, model_type), None


def _finetuned_kwargs(entrypoint: str, name: str, model_type: str | None, finetuned: FinetunedCheckpoint,
                      path: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The build options of a fine-tuned checkpoint's model: its number of classes, unless the user
    asks for another head; the entrypoint and model type must be those it was fine-tuned from."""
    if ALIASES.get(finetuned.entrypoint, finetuned.entrypoint) != name or finetuned.model_type != model_type:
        def call(function: str, variant: str | None) -> str:
            return f"{function}(model_type={variant!r})" if variant else f"{function}()"

        raise InvalidArgumentError(f"weights={str(path)!r} was fine-tuned from {call(finetuned.entrypoint, finetuned.model_type)}"
                                   f"; load it with that, not with {call(entrypoint, model_type)}")
    return {"num_classes": finetuned.num_classes, **kwargs}


def _read_weights(path: Path, entry: WeightsEntry | None,
                  spec: ModelSpec) -> tuple[dict[str, torch.Tensor], FinetunedCheckpoint | None]:
    """The weights of ``path`` under the model's key names, and its metadata if it is a fine-tuned
    checkpoint (``python3 -m models finetune``'s, whose keys are already the model's)."""
    contents = read_checkpoint(path, entry.archive_member if entry else None)
    finetuned = None if entry is not None else recognise_finetuned(contents, str(path))
    if finetuned is not None:
        return finetuned.state_dict, finetuned
    state = extract_state_dict(contents, str(path))
    return (rename_keys(state, spec.key_map) if spec.key_map is not None else state), None


def _load_checkpoint(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into ``model``; classifiers of another number of classes stay freshly initialised."""
    resized = [(name, layer, state[f"{name}.weight"].shape[0]) for name, layer in model.named_modules()
               if isinstance(layer, nn.Linear) and f"{name}.weight" in state
               and state[f"{name}.weight"].shape[0] != layer.out_features]
    skip = tuple(f"{name}." for name, _, _ in resized)
    if resized:
        names = ", ".join(f"'{name}'" for name, _, _ in resized)
        warnings.warn(f"{path.name} has a {resized[-1][2]}-class classifier and the model "
                      f"{resized[-1][1].out_features} classes: the backbone is pretrained, the classifier "
                      f"layers {names} are freshly initialised", FreshClassifierWarning, stacklevel=4)
    load_into(model, state, str(path), skip)
