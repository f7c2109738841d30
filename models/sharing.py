"""Share a model: a folder that timm and the Hugging Face Hub read (``save-pretrained``), and its upload.

:func:`save_pretrained` writes a model of ours (pretrained, fine-tuned or loaded from a folder) as
``model.safetensors``, timm's ``config.json`` and a ``README.md`` model card filled from
``model_card_template.md``. Where timm builds exactly the model's architecture
(``ModelSpec.timm_architecture``), ``config.json`` names it and ``timm.create_model("local-dir:DIR",
pretrained=True)`` (or ``"hf-hub:org/name"`` once pushed) loads the folder; every folder loads with
``torch.hub.load(repo, entrypoint, weights=DIR)`` (or ``weights="hf-hub:org/name"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

from torch import nn

from ..processing.labels import class_names
from ..processing.transforms import PREPROCESS_KEYS
from .errors import InvalidArgumentError
from .registry import ALIASES, SPECS
from .repository import GITHUB_REPO
from .weights.finetuned import FinetunedCheckpoint
from .weights.manifest import load_manifest
from .weights.model_folder import built_for_weights, write_model_folder

CARD_TEMPLATE = Path(__file__).with_name("model_card_template.md")
HF_LICENSES = {"CC-BY-NC 4.0": "cc-by-nc-4.0", "BSD-3-Clause (torchvision)": "bsd-3-clause"}
"""The Hugging Face license id of the manifest's weights licenses, by how their text starts (NGC's model
license has none: "other"); weights derived from published ones (fine-tuned) keep their license."""
_METRICS = (("images", "images"), ("top1", "top-1 (%)"), ("top5", "top-5 (%)"), ("loss", "loss"))


def save_pretrained(model: nn.Module, directory: str | os.PathLike, metrics: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (one of ours, as an entrypoint returned it) into ``directory`` as a model folder;
    ``metrics`` (``python3 -m models validate``'s JSON) go into its card. Returns the folder."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping) or "entrypoint" not in cfg or "classifier" not in cfg:
        raise InvalidArgumentError("save_pretrained needs a classifier model made by a convnets-hub entrypoint "
                                   "(not features_only=True, not optimize=True)")
    entrypoint = cfg["entrypoint"]
    spec = SPECS[ALIASES.get(entrypoint, entrypoint)]
    state = {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}
    checkpoint = FinetunedCheckpoint(
        entrypoint=entrypoint, model_type=cfg["model_type"], class_names=class_names(cfg),
        preprocessing={key: cfg[key] for key in PREPROCESS_KEYS}, pretrained_build=built_for_weights(cfg),
        state_dict=state)
    config = timm_config(model, spec.timm_architecture, spec.timm_model_args, checkpoint)
    return write_model_folder(Path(directory), checkpoint, config, model_card(model, checkpoint, config, metrics))


def timm_config(model: nn.Module, architecture: str, model_args: Mapping[str, Any],
                checkpoint: FinetunedCheckpoint) -> dict[str, Any]:
    """timm's ``config.json`` of the model: ``architecture`` is timm's name where timm builds this exact
    model, else the entrypoint (which timm does not know)."""
    cfg = model.pretrained_cfg
    num_classes = cfg["num_classes"]
    classifier = model.get_submodule(cfg["classifier"])
    num_features = getattr(model, "num_features", None) or getattr(classifier, "in_features", None)
    pretrained_cfg: dict[str, Any] = {"tag": cfg["id"] or "convnets_hub", "custom_load": False}
    if architecture:
        from timm.models import get_pretrained_cfg

        default = get_pretrained_cfg(architecture)
        pretrained_cfg.update({key: getattr(default, key) for key in ("first_conv", "pool_size")
                               if default is not None and getattr(default, key, None) is not None})
    pretrained_cfg.update({key: list(value) if isinstance(value, tuple) else value
                           for key, value in checkpoint.preprocessing.items()})
    pretrained_cfg.update({"crop_mode": "center", "num_classes": num_classes, "classifier": cfg["classifier"],
                           "label_names": list(checkpoint.class_names)})
    config: dict[str, Any] = {"architecture": architecture or checkpoint.entrypoint, "num_classes": num_classes,
                              "num_features": num_features}
    if architecture and model_args:
        config["model_args"] = dict(model_args)
    config["pretrained_cfg"] = pretrained_cfg
    return config


def model_card(model: nn.Module, checkpoint: FinetunedCheckpoint, config: Mapping[str, Any],
               metrics: Mapping[str, Any] | None = None) -> str:
    """The README.md of a model folder, from ``model_card_template.md``."""
    cfg = model.pretrained_cfg
    name = ALIASES.get(checkpoint.entrypoint, checkpoint.entrypoint)
    spec = SPECS[name]
    manifest = load_manifest()
    entry = manifest.get(cfg["id"], name, cfg["model_type"]) if cfg["id"] else None
    base = entry or manifest.default(name, checkpoint.model_type)
    call = f"{checkpoint.entrypoint}(model_type={checkpoint.model_type!r})" if checkpoint.model_type \
        else checkpoint.entrypoint
    if entry is not None:
        source, license_text = f"published weights `{entry.id}` ({', '.join(entry.urls)})", entry.license
    elif cfg["checkpoint"] is not None:
        source = f"`{Path(cfg['checkpoint']).name}`, the user's own weights (fine-tuned or trained)"
        license_text = (f"set by the author; derived from `{base.id}`, licensed {base.license}" if base
                        else "set by the author")
    else:
        source, license_text = "none: randomly initialised", "set by the author"
    architecture = config["architecture"]
    timm_built = architecture != checkpoint.entrypoint
    labels = checkpoint.class_names
    fields = {
        "library_name": "timm" if timm_built else "pytorch",
        "license_id": next((hf for lead, hf in HF_LICENSES.items()
                            if base and cfg["checkpoint"] is not None and base.license.startswith(lead)),
                           "other"),
        "tags": "\n".join(f"- {tag}" for tag in ("image-classification", "convnets-hub", *(("timm",) if timm_built else ()))),
        "title": f"{checkpoint.entrypoint}" + (f" ({checkpoint.model_type})" if checkpoint.model_type else ""),
        "summary": spec.summary.strip(),
        "call": call, "repo": GITHUB_REPO, "source": source, "license": license_text,
        "num_classes": len(labels),
        "classes": "; ".join(labels[:5]) + ("; ..." if len(labels) > 5 else ""),
        "num_params": f"{sum(p.numel() for p in model.parameters()):,}",
        "preprocessing": _preprocessing_text(checkpoint.preprocessing),
        "metrics": _metrics_table(metrics),
        "loading": _loading_text(checkpoint, architecture if timm_built else ""),
    }
    return Template(CARD_TEMPLATE.read_text(encoding="utf-8")).substitute(fields)


def _preprocessing_text(prep: Mapping[str, Any]) -> str:
    size = prep["input_size"]
    resize = round(size[-1] / prep["crop_pct"])
    return (f"{prep['interpolation']} resize of the shorter side to {resize} px, centre crop {size[-2]}x{size[-1]} "
            f"(crop_pct {prep['crop_pct']:g}), {size[0]} channels normalised with mean {list(prep['mean'])} "
            f"and std {list(prep['std'])}")


def _metrics_table(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return "Not measured: `python3 -m models validate` measures it, `save-pretrained --metrics` records it."
    rows = [f"| {label} | {metrics[key]:.4g} |" if isinstance(metrics[key], float) else f"| {label} | {metrics[key]} |"
            for key, label in _METRICS if key in metrics]
    data = f"\n\nOn `{metrics['data']}` (`python3 -m models validate`)." if metrics.get("data") else ""
    return "| metric | value |\n|---|---|\n" + "\n".join(rows) + data


def _loading_text(checkpoint: FinetunedCheckpoint, architecture: str) -> str:
    keyword = f", model_type={checkpoint.model_type!r}" if checkpoint.model_type else ""
    hub = (f'```python\nimport torch\nmodel = torch.hub.load("{GITHUB_REPO}", "{checkpoint.entrypoint}"{keyword}, '
           f'weights="hf-hub:<org>/<name>")  # or weights="path/to/this/folder"\n```')
    if not architecture:
        return (f"timm has no architecture that computes this model exactly: load it with convnets-hub.\n\n{hub}")
    return (f"With timm (architecture `{architecture}`):\n\n```python\nimport timm\n"
            f'model = timm.create_model("hf-hub:<org>/<name>", pretrained=True)  # or "local-dir:path/to/this/folder"\n'
            f"```\n\nWith convnets-hub:\n\n{hub}")
