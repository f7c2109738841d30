"""Load hub entrypoints through ``torch.hub.load`` as a user does and classify the sample photo.

The sample photo is matplotlib's ``sample_data/grace_hopper.jpg``: matplotlib is a dependency of
the hub (``show()``), and every installation of it carries the photo, so the repository ships
no image of its own. Every ImageNet model puts "military uniform" in its top 5 on it.
"""

from __future__ import annotations

import gc
import importlib.util
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..processing.labels import class_names
from ..processing.transforms import model_config
from .weights.manifest import Manifest, WeightsEntry
from .weights.records import RECORD_SUFFIX, checkpoint_dir, read_record
from .weights.verify import sha256_of, verification_of

EXPECTED_IN_TOP5 = ("military uniform",)


def sample_photo() -> Path:
    """matplotlib's Grace Hopper photo, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("matplotlib is not installed: the sample photo comes with it")
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's sample photo {path} is missing")
    return path


@dataclass(frozen=True)
class Case:
    """One load: an entrypoint, its variant (``model_type``) and weights id (None: its default), or
    ``pretrained=False``: the model randomly initialised."""

    entrypoint: str
    model_type: str | None = None
    weights: str | None = None
    pretrained: bool = True

    def __str__(self) -> str:
        variant = f" model_type={self.model_type}" if self.model_type else ""
        weights = f" weights={self.weights}" if self.weights else ""
        pretrained = "" if self.pretrained else " pretrained=False"
        return f"{self.entrypoint}{variant}{weights}{pretrained}"


@dataclass
class Outcome:
    """What one load gave: the table row and, if it failed, why (``problem``)."""

    case: Case
    weights_id: str | None = None
    verified: str = "-"
    sha256: str | None = None
    load_seconds: float | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    problem: str | None = None
    weights_unavailable: bool = False
    """The load failed because no source could give the weights (offline, say)."""




def plan(entrypoints: list[str], manifest: Manifest, pretrained: bool = True) -> list[Case]:
    """Every entrypoint's default weights for each of its variants, then each other manifest entry;
    with ``pretrained=False``, each entrypoint and variant once, randomly initialised."""
    cases = []
    for name in entrypoints:
        entries = [entry for entry in manifest.entries if entry.entrypoint == name]
        for model_type in dict.fromkeys(entry.model_type for entry in entries) or [None]:
            cases.append(Case(name, model_type, pretrained=pretrained))
            if pretrained:
                default = manifest.default(name, model_type)
                cases += [Case(name, model_type, entry.id) for entry in entries
                          if entry.model_type == model_type and entry is not default]
    return cases


def run_case(case: Case, repo: str, source: str, manifest: Manifest, utils: Any, photo: Path,
             device: str, model_math: str) -> Outcome:
    """Load ``case`` through torch.hub.load, classify ``photo`` and describe the weights it loaded."""
    outcome = Outcome(case)
    kwargs: dict[str, Any] = {"progress": False, "device": device, "model_math": model_math}
    if case.model_type is not None:
        kwargs["model_type"] = case.model_type
    if case.weights is not None:
        kwargs["weights"] = case.weights
    if not case.pretrained:
        kwargs["pretrained"] = False
    records_before = set(checkpoint_dir().glob(f"*{RECORD_SUFFIX}"))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not pinned by a sha256")  # the table shows it
            model = torch.hub.load(repo, case.entrypoint, source=source, trust_repo=True, verbose=False, **kwargs)
    except Exception as error:  # noqa: BLE001 -- every failure to load is reported, whatever its type
        outcome.problem = f"could not load: {type(error).__name__}: {error}"
        # By name: loaded from GitHub (--repo), the repository's classes are not ours.
        outcome.weights_unavailable = type(error).__name__ == "WeightsUnavailableError"
        return outcome
    outcome.load_seconds = time.perf_counter() - start
    cfg = getattr(model, "pretrained_cfg", {})
    outcome.weights_id = cfg.get("id")
    checkpoint = Path(cfg["checkpoint"]) if cfg.get("checkpoint") else None
    if checkpoint is not None:
        entry = next((e for e in manifest.entries if e.id == outcome.weights_id), None)
        outcome.verified, outcome.sha256 = _verification(entry, checkpoint, records_before)
    try:
        outcome.top5, finite = _classify(model, utils, photo, device)
        if not finite:
            outcome.problem = "non-finite output (NaN or infinite logits)"
    except Exception as error:  # noqa: BLE001 -- as for loading
        outcome.problem = f"could not classify the photo: {type(error).__name__}: {error}"
    del model
    gc.collect()
    return outcome


def check_prediction(outcome: Outcome) -> None:
    """Mark an ImageNet model with pretrained weights whose top 5 lacks every expected class."""
    imagenet = outcome.top5 and not outcome.top5[0][0].startswith("class ")
    if outcome.problem is None and outcome.weights_id is not None and imagenet:
        labels = [label for label, _ in outcome.top5]
        if not any(label.split(",")[0] in EXPECTED_IN_TOP5 for label in labels):
            outcome.problem = f"top-5 lacks {' / '.join(EXPECTED_IN_TOP5)}: {', '.join(labels)}"


def _verification(entry: WeightsEntry | None, checkpoint: Path, records_before: set[Path]) -> tuple[str, str]:
    record = read_record(checkpoint.name)
    sha256 = record.sha256 if record is not None else sha256_of(checkpoint)
    if entry is None:
        return "none (not a manifest entry)", sha256
    how = verification_of(entry)
    if how == "first-use record" and checkpoint_dir() / f"{checkpoint.name}{RECORD_SUFFIX}" not in records_before:
        how = "first use (recorded now)"
    return how, sha256


def _classify(model: torch.nn.Module, utils: Any, photo: Path, device: str) -> tuple[list[tuple[str, float]], bool]:
    """The top 5 (label, probability) of ``photo`` and whether every logit is finite."""
    batch = utils.prepare_input_from_uri(str(photo), cuda=device if device != "cpu" else False, model=model)
    with torch.inference_mode():
        logits = model.eval()(batch).float()[0].cpu()
    top = torch.topk(torch.softmax(logits, dim=0), k=min(5, logits.numel()))
    labels = class_names(model_config(model))
    top5 = [(labels[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
    return top5, bool(torch.isfinite(logits).all())
