"""Build and load: an entrypoint's architecture, its weights, its head and its ``pretrained_cfg``.

:func:`build_model` is the first of :func:`.factory.create_model`'s two steps (timm's
``build_model_with_cfg``); the second, in :mod:`.runtime.placement`, puts the model on its device
and precision.
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from timm.models import adapt_input_conv
from torch import nn

from .archs.timm_api import (
    OutIndices,
    checked_num_classes,
    classifier_name,
    features_only_model,
)
from .errors import InvalidArgumentError, WeightsUnavailableError
from .pretrained_config import (
    features_pretrained_cfg,
    pretrained_cfg_of,
    set_pretrained_cfg,
)
from .registry import ALIASES, SPECS, ModelSpec, default_preprocessing
from .settings import OFFLINE_ENV, is_offline
from .weights.finetuned import FinetunedCheckpoint, check_head, recognise_finetuned
from .weights.hf_hub import HF_PREFIX, resolve_hub_folder
from .weights.loading import extract_state_dict, load_into, read_checkpoint, rename_keys
from .weights.manifest import Manifest, WeightsEntry, load_manifest
from .weights.model_folder import is_model_folder, read_model_folder
from .weights.sources import download_url, resolve_any_source

RUNTIME_OPTIONS = ("pretrained", "progress", "weights", "model_math", "device", "optimize", "features_only",
                   "out_indices", "calibration")
"""The keywords that every entrypoint takes besides its architecture's own."""


class FreshClassifierWarning(UserWarning):
    """Pretrained weights were loaded without their classifier, which is freshly initialised."""


def build_model(entrypoint: str, *, pretrained: bool, progress: bool, weights: str | os.PathLike | None,
                dtype: torch.dtype, features_only: bool, out_indices: OutIndices,
                **kwargs: Any) -> nn.Module:
    """``entrypoint``'s model in ``dtype`` on the CPU, with its weights (None: the manifest's default when
    ``pretrained``), its head for ``num_classes`` and its ``pretrained_cfg``; timm's feature extractor of it
    with ``features_only``. ``kwargs`` are the architecture's own options (``model_type`` included)."""
    name = ALIASES.get(entrypoint, entrypoint)
    spec = SPECS[name]
    _check_keywords(entrypoint, spec, kwargs)
    if out_indices is not None and not features_only:
        raise InvalidArgumentError(f"out_indices={out_indices!r} selects feature maps: it needs features_only=True")
    if "num_classes" in kwargs:
        checked_num_classes(kwargs["num_classes"])
    if features_only:
        kwargs["num_classes"] = 0  # no head: its weights are neither built nor loaded
    model_type = None
    if spec.canonical_type is not None:
        kwargs["model_type"] = model_type = spec.canonical_type(kwargs["model_type"])
    manifest = load_manifest()
    entry, checkpoint, source = _select_weights(name, spec, model_type, pretrained, weights, progress, manifest)
    state, finetuned = (None, None) if checkpoint is None else _read_weights(checkpoint, source, spec)
    if finetuned is not None:
        kwargs = _finetuned_kwargs(entrypoint, name, model_type, finetuned, checkpoint, kwargs)
    pretrained_build = state is not None and (finetuned is None or finetuned.pretrained_build)
    build_kwargs = pretrained_kwargs(entrypoint, spec, entry, kwargs) if pretrained_build else kwargs
    if state is None:
        model, plan = spec.build(**build_kwargs).to(dtype), None
    else:
        model, plan = _build_for_checkpoint(spec, build_kwargs, dtype, state, checkpoint,
                                            spec.first_conv_name(model_type), finetuned)
    if pretrained_build and spec.to_served_model is not None:
        spec.to_served_model(model, kwargs)
    if plan is not None:
        plan.load(model)
    described = entry or manifest.default(name, model_type)
    preprocessing = (finetuned.preprocessing if finetuned else
                     described.preprocessing if described else default_preprocessing(name, model_type))
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
    return model


def _check_keywords(entrypoint: str, spec: ModelSpec, kwargs: dict[str, Any]) -> None:
    accepted = inspect.signature(spec.build).parameters
    for key in kwargs:
        if key not in accepted:
            raise TypeError(f"{entrypoint}() got an unexpected keyword argument {key!r}; "
                            f"it accepts {', '.join(RUNTIME_OPTIONS)}, {', '.join(accepted)}")


def pretrained_kwargs(entrypoint: str, spec: ModelSpec, entry: WeightsEntry | None,
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
                    manifest: Manifest) -> tuple[WeightsEntry | None, Path | None, WeightsEntry | None]:
    """The manifest entry (if any), the local file (or model folder) of the weights to load (None: no
    weights) and the entry of the source that gave the file (the manifest entry, or one of its Hub sources)."""
    if weights is None:
        if not pretrained:
            return None, None, None
        entry = manifest.default(entrypoint, model_type)
        if entry is None:
            raise InvalidArgumentError(f"{entrypoint} has no published weights in {manifest.path}; "
                                       "use pretrained=False or weights=<checkpoint path or URL>"
                                       + (f", or {spec.no_weights_hint}" if spec.no_weights_hint else ""))
        return entry, *resolve_any_source(entry, progress)
    if not pretrained and manifest.default(entrypoint, model_type) is not None:
        raise InvalidArgumentError(f"weights={weights!r} was given with pretrained=False; drop one of them")
    text = os.fspath(weights)
    if text in manifest:
        entry = manifest.get(text, entrypoint, model_type)
        return entry, *resolve_any_source(entry, progress)
    if text.startswith(HF_PREFIX):
        return None, resolve_hub_folder(text), None
    if text.startswith(("http://", "https://")):
        if is_offline():
            raise WeightsUnavailableError(f"weights={text!r} is a URL and {OFFLINE_ENV}=1 forbids "
                                          "downloading it; pass a local path instead")
        return None, download_url(text, progress), None
    if Path(text).expanduser().is_file() or is_model_folder(Path(text).expanduser()):
        return None, Path(text).expanduser(), None
    return manifest.get(text, entrypoint, model_type), None, None


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


def _read_weights(path: Path, source: WeightsEntry | None,
                  spec: ModelSpec) -> tuple[dict[str, torch.Tensor], FinetunedCheckpoint | None]:
    """The weights of ``path`` (a file, or a model folder of save-pretrained or timm) under the model's key
    names, and its metadata if it is a fine-tuned checkpoint or model folder of ours (whose keys are already
    the model's). ``source`` is the manifest entry of the file, if any: its archive member and key layout."""
    if path.is_dir():
        path, finetuned = read_model_folder(path)
        if finetuned is not None:
            return finetuned.state_dict, finetuned
    contents = read_checkpoint(path, source.archive_member if source else None)
    finetuned = None if source is not None else recognise_finetuned(contents, str(path))
    if finetuned is not None:
        return finetuned.state_dict, finetuned
    state = extract_state_dict(contents, str(path))
    own_keys = spec.key_map is None or (source is not None and source.key_layout == "timm")
    return (state if own_keys else rename_keys(state, spec.key_map)), None


@dataclass(frozen=True)
class _LoadPlan:
    """How a checkpoint's weights go into a model: ``state``, read from ``path``, under the model's keys (its input
    convolution adapted to the model's ``in_chans``), all loaded but the modules under the prefixes ``fresh`` (a
    classifier of another number of classes, which keeps its initialisation)."""

    state: dict[str, torch.Tensor]
    path: Path
    fresh: tuple[str, ...]

    def fills(self, model: nn.Module) -> bool:
        """Whether loading gives every tensor of ``model`` a value (none is left as initialised): the state
        dict holds every parameter and buffer (none is non-persistent) and ``state`` every entry of it, none
        under ``fresh`` (a model without a classifier, ``num_classes=0``, has none there)."""
        entries = model.state_dict()
        return (all(name in entries for name, _ in model.named_buffers())
                and all(key in self.state and not key.startswith(self.fresh) for key in entries))

    def load(self, model: nn.Module) -> None:
        """Load into ``model`` strictly (but ``fresh``), without the weights of the modules that the served model
        dropped (``spec.to_served_model``)."""
        kept = {key: value for key, value in self.state.items() if not _in_dropped_module(model, key)}
        load_into(model, kept, str(self.path), self.fresh)


def _build_for_checkpoint(spec: ModelSpec, build_kwargs: dict[str, Any], dtype: torch.dtype,
                          state: dict[str, torch.Tensor], path: Path, first_conv: str,
                          finetuned: FinetunedCheckpoint | None) -> tuple[nn.Module, _LoadPlan]:
    """``spec``'s model in ``dtype`` on the CPU and the plan of loading ``state`` (read from ``path``) into it,
    made on a build on the meta device (shapes only). A checkpoint that fills every tensor materialises that
    build uninitialised: no random weights are drawn to be overwritten (more than half the time of a large
    model's load) and the global random stream is left as it was. Otherwise the model is built for real, and
    initialised as ever. The plan is made on the model as built, before ``spec.to_served_model``: a checkpoint
    without the modules that the served model drops is loaded the second way."""
    with torch.device("meta"):
        model = spec.build(**build_kwargs).to(dtype)  # loaded in the model's precision: float64 keeps it
    if finetuned is not None:
        check_head(finetuned, classifier_name(model), str(path))
    plan = _plan_load(model, spec, state, path, first_conv)
    if plan.fills(model):
        return model.to_empty(device="cpu"), plan
    return spec.build(**build_kwargs).to(dtype), plan


def _plan_load(model: nn.Module, spec: ModelSpec, state: dict[str, torch.Tensor], path: Path,
               first_conv: str) -> _LoadPlan:
    """The plan of loading ``state`` into ``model``: every weight, but the classifier where its number of classes
    differs (it stays freshly initialised, and a FreshClassifierWarning names it unless the model has none);
    the input convolution ``first_conv``, where the model takes other than the checkpoint's number of channels
    (``in_chans``), adapted as timm's ``load_pretrained`` does (``adapt_input_conv``)."""
    expected = model.state_dict()
    conv = f"{first_conv}.weight"
    if conv in state and conv in expected and state[conv].dim() == 4 and state[conv].shape[1] != expected[conv].shape[1]:
        state = {**state, conv: adapt_input_conv(expected[conv].shape[1], state[conv], base_chans=state[conv].shape[1])}
    classifier = classifier_name(model)
    weight = f"{classifier}.weight"
    given = state[weight].shape[0] if weight in state else None
    classes = expected[weight].shape[0] if weight in expected else 0
    fresh: tuple[str, ...] = ()
    if given is not None and given != classes:
        fresh = tuple(f"{name}." for name in (classifier, *spec.aux_classifiers))
        if classes:
            warnings.warn(f"{path.name} has a {given}-class classifier and the model {classes} classes: every "
                          f"weight is loaded but the classifier '{classifier}', which is freshly initialised",
                          FreshClassifierWarning, stacklevel=6)  # the entrypoint's caller
    return _LoadPlan(state, path, fresh)


def _in_dropped_module(model: nn.Module, key: str) -> bool:
    """Whether checkpoint ``key`` belongs to a module that the model holds as None (dropped after building,
    as GoogLeNet's auxiliary heads are)."""
    module: Any = model
    for part in key.split(".")[:-1]:
        if not isinstance(module, nn.Module) or part not in module._modules:
            return False
        module = module._modules[part]
        if module is None:
            return True
    return False
