"""The one path every model entrypoint takes: build, resolve weights, load, describe."""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from timm.models import adapt_input_conv
from torch import nn

from .archs.timm_api import OutIndices, checked_num_classes, features_only_model
from .errors import InvalidArgumentError, WeightsUnavailableError
from .pretrained_config import (
    features_pretrained_cfg,
    pretrained_cfg_of,
    set_pretrained_cfg,
)
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
                 device: str | torch.device | None = None, optimize: bool = False, features_only: bool = False,
                 out_indices: OutIndices = None, **kwargs: Any) -> nn.Module:
    """Build ``entrypoint``'s model, load its weights, attach ``pretrained_cfg``, set precision and device.

    With ``optimize=True`` the result is :func:`optimize_for_inference`'s inference-only model
    (weights loaded and BatchNorm folded in float32, or float64 for "fp64", then cast);
    otherwise the model (in training mode) is moved to ``device`` and ``model_math`` and accepts a
    float batch of any dtype. With ``features_only=True`` it is timm's feature extractor of the
    model (:func:`features_only_model`), whose ``pretrained_cfg`` has no classifier.
    """
    dtype = parse_model_math(model_math)
    target = parse_device(device)
    warn_if_emulated(dtype, target)
    for option, value in (("optimize", optimize), ("features_only", features_only)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{option}={value!r} must be True or False")
    if out_indices is not None and not features_only:
        raise InvalidArgumentError(f"out_indices={out_indices!r} selects feature maps: it needs features_only=True")
    name = ALIASES.get(entrypoint, entrypoint)
    spec = SPECS[name]
    _check_keywords(entrypoint, spec, kwargs)
    if "num_classes" in kwargs:
        checked_num_classes(kwargs["num_classes"])
    if features_only:
        kwargs["num_classes"] = 0  # no head: its weights are neither built nor loaded
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
    classifier = spec.classifier_name(model_type)
    if state is not None:
        _load_checkpoint(model, spec, classifier, state, checkpoint, spec.first_conv_name(model_type))
        if pretrained_build and finetuned is None and spec.after_load is not None:
            spec.after_load(model, kwargs)
    described = entry or manifest.default(name, model_type)
    preprocessing = (finetuned.preprocessing if finetuned else
                     described.preprocessing if described else spec.preprocessing(model_type))
    # A user's own file is preprocessed as the published weights are, but their metrics (and license) are
    # not its own; an untrained model keeps them as the figures of its architecture's default weights.
    published = None if checkpoint is not None and entry is None else described
    cfg = pretrained_cfg_of(model, spec, architecture=name, entrypoint=entrypoint, model_type=model_type,
                            preprocessing=preprocessing, loaded=entry, published=published,
                            checkpoint=str(checkpoint) if checkpoint is not None else None)
    if finetuned is not None and finetuned.num_classes == cfg.num_classes:
        cfg = replace(cfg, label_names=finetuned.class_names)  # the user's classes, by index
    if features_only:
        model = features_only_model(model, out_indices)
        set_pretrained_cfg(model, features_pretrained_cfg(cfg.to_dict()))
    else:
        set_pretrained_cfg(model, cfg.to_dict())
    if optimize:
        return optimize_for_inference(model, dtype=dtype, device=target)
    return cast_inputs_to_model(model.to(device=target, dtype=dtype))


def _check_keywords(entrypoint: str, spec: ModelSpec, kwargs: dict[str, Any]) -> None:
    accepted = inspect.signature(spec.build).parameters
    for key in kwargs:
        if key not in accepted:
            raise TypeError(f"{entrypoint}() got an unexpected keyword argument {key!r}; "
                            f"it accepts pretrained, progress, weights, model_math, device, optimize, "
                            f"features_only, out_indices, {', '.join(accepted)}")


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


def _load_checkpoint(model: nn.Module, spec: ModelSpec, classifier: str, state: dict[str, torch.Tensor],
                     path: Path, first_conv: str) -> None:
    """Load ``state`` (read from ``path``) into ``model``: every weight, but the classifier where its number of
    classes differs (it stays freshly initialised, and a FreshClassifierWarning names it unless the model has
    none); the input convolution ``first_conv``, where the model takes other than the checkpoint's number of
    channels (``in_chans``), adapted as timm's ``load_pretrained`` does (``adapt_input_conv``)."""
    expected = model.state_dict()
    conv = f"{first_conv}.weight"
    if conv in state and conv in expected and state[conv].dim() == 4 and state[conv].shape[1] != expected[conv].shape[1]:
        state = {**state, conv: adapt_input_conv(expected[conv].shape[1], state[conv], base_chans=state[conv].shape[1])}
    weight = f"{classifier}.weight"
    given = state[weight].shape[0] if weight in state else None
    classes = expected[weight].shape[0] if weight in expected else 0
    skip: tuple[str, ...] = ()
    if given is not None and given != classes:
        skip = tuple(f"{name}." for name in (classifier, *spec.aux_classifiers))
        if classes:
            warnings.warn(f"{path.name} has a {given}-class classifier and the model {classes} classes: every "
                          f"weight is loaded but the classifier '{classifier}', which is freshly initialised",
                          FreshClassifierWarning, stacklevel=4)
    load_into(model, state, str(path), skip)
