"""``python3 -m models smoke``: load every model entrypoint through torch.hub and classify the sample photo.

    python3 -m models smoke                                  # this checkout (torch.hub source="local")
    python3 -m models smoke --repo owner/convnets-hub:main --check-predictions --markdown

    python3 -m models smoke --no-pretrained                  # offline: build every model, one forward pass

Every model entrypoint that torch.hub lists for the repository is loaded with its default weights, once per
variant (every GPUNet type), and once more for each other weights id of the manifest in use
(``CONVNETS_HUB_MANIFEST``, else the repository's); ``CONVNETS_HUB_MIRROR`` and
``CONVNETS_HUB_OFFLINE`` apply as to any load. With ``--no-pretrained`` each entrypoint and variant
is built with ``pretrained=False`` instead (nothing is downloaded). The sample photo is matplotlib's
``sample_data/grace_hopper.jpg``, which every matplotlib installation carries.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..hub import PROCESSING_UTILS, entrypoint_names
from ..registry import ALIASES
from ..repository import REPO_ROOT
from ..weights.manifest import load_manifest, manifest_path
from .arguments import CommandError

if TYPE_CHECKING:
    from ..hub_check import Case, Outcome
    from ..weights.manifest import Manifest

_GITHUB_REPO = re.compile(r"^[\w.-]+/[\w.-]+(:[\w./-]+)?$")
TABLE_CAUSE_CHARS = 80
COLUMNS = ("entrypoint", "weights id", "verified", "sha256", "load s", "top-1", "p", "result")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("smoke", help="load every entrypoint through torch.hub and classify a photo",
                                   description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--repo", metavar="OWNER/NAME[:REF]",
                        help="load from this GitHub repository (default: this checkout, source='local')")
    parser.add_argument("--entrypoint", action="append", metavar="E",
                        help="only this entrypoint (repeatable; default: every model entrypoint)")
    parser.add_argument("--model-type", action="append", metavar="T",
                        help="only this variant of entrypoints that serve several (repeatable; e.g. GPUNet-0)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--model-math", default="fp32", metavar="fp32|fp16|bf16|fp64",
                        help="the models' precision (default fp32)")
    parser.add_argument("--no-pretrained", action="store_true",
                        help="build every entrypoint and variant with pretrained=False (randomly initialised, "
                             "nothing downloaded) and run one forward pass: works offline")
    parser.add_argument("--check-predictions", action="store_true",
                        help="fail ImageNet models whose top 5 on the photo lacks 'military uniform' "
                             "(meaningful with the real weights)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown (for $GITHUB_STEP_SUMMARY)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from ..hub_check import check_prediction, plan, run_case, sample_photo

    repo, source = _hub_source(args.repo)
    photo = sample_photo()
    utils = torch.hub.load(repo, "nvidia_convnets_processing_utils", source=source, trust_repo=True, verbose=False)
    repo_root = Path(sys.modules[type(utils).__module__].__file__).resolve().parents[1]
    manifest = load_manifest(manifest_path(repo_root))
    cases = _select(plan(_chosen_entrypoints(repo, source, args.entrypoint), manifest,
                         pretrained=not args.no_pretrained), args.model_type)
    outcomes = []
    for case in tqdm(cases, desc="smoke", unit="model", file=sys.stderr):
        outcome = run_case(case, repo, source, manifest, utils, photo, args.device, args.model_math)
        if args.check_predictions:
            check_prediction(outcome)
        outcomes.append(outcome)
    print(format_table(outcomes, markdown=args.markdown))
    failed = [outcome for outcome in outcomes if outcome.problem]
    if failed:
        print("\n".join(failure_report(failed, len(outcomes), manifest)), file=sys.stderr)
        return 1
    return 0


def failure_report(failed: list[Outcome], total: int, manifest: Manifest) -> list[str]:
    """The lines naming the failed loads, each cause once with the loads it failed listed together.

    When every load failed for want of its weights on an offline machine, the heading says so once,
    with what to do, and each line names the missing file instead of repeating the error."""
    from ..weights.records import checkpoint_dir
    from ..weights.sources import OFFLINE_ENV, is_offline

    heading = f"python3 -m models smoke: {len(failed)} of {total} {'load' if total == 1 else 'loads'} failed"
    offline = is_offline() or all("is this machine offline" in outcome.problem for outcome in failed)
    if offline and all(outcome.weights_unavailable for outcome in failed):
        why = f"{OFFLINE_ENV}=1" if is_offline() else "the weights' host names cannot be resolved"
        lines = [(f"{heading}: this machine is offline ({why}) and their weights are not in {checkpoint_dir()}; "
                 "put the files there, or run python3 -m models smoke --no-pretrained to check every model "
                 "without weights. The missing files:")]

        def cause(outcome: Outcome) -> str:
            return _weights_file(outcome.case, manifest)
    else:
        lines = [f"{heading}:"]

        def cause(outcome: Outcome) -> str:
            return " ".join(outcome.problem.split())  # one line, whatever the error's own line breaks
    grouped: dict[str, list[str]] = {}
    for outcome in failed:
        grouped.setdefault(cause(outcome), []).append(str(outcome.case))
    return lines + [f"    {', '.join(cases)}: {text}" for text, cases in grouped.items()]


def _weights_file(case: Case, manifest: Manifest) -> str:
    entry = manifest.get(case.weights, ALIASES.get(case.entrypoint, case.entrypoint), case.model_type) \
        if case.weights else manifest.default(ALIASES.get(case.entrypoint, case.entrypoint), case.model_type)
    return entry.file_name if entry is not None else "(no manifest entry)"


def format_table(outcomes: list[Outcome], markdown: bool = False) -> str:
    """One row per load: entrypoint, weights id, how verified, sha256, load seconds, top-1 and result."""
    rows = [_row(outcome) for outcome in outcomes]
    if markdown:
        lines = [COLUMNS, ("---",) * len(COLUMNS), *rows]
        return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)
    widths = [max(len(line[i]) for line in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in (COLUMNS, *rows))


def _row(outcome: Outcome) -> tuple[str, ...]:
    case = outcome.case
    name = case.entrypoint + (f" ({case.model_type})" if case.model_type else "")
    top1, probability = outcome.top5[0] if outcome.top5 else ("-", float("nan"))
    return (name, outcome.weights_id or "-", outcome.verified, outcome.sha256 or "-",
            f"{outcome.load_seconds:.1f}" if outcome.load_seconds is not None else "-",
            top1.split(",")[0], f"{probability:.3f}" if outcome.top5 else "-",
            "ok" if outcome.problem is None else _short_failure(outcome))


def _short_failure(outcome: Outcome) -> str:
    """The table's cell of a failed load; its whole cause is printed once, below the table."""
    if outcome.weights_unavailable:
        return "FAILED: weights unavailable"
    text = f"FAILED: {' '.join(outcome.problem.split())}"
    return text if len(text) <= TABLE_CAUSE_CHARS else text[:TABLE_CAUSE_CHARS - 3] + "..."


def _hub_source(repo: str | None) -> tuple[str, str]:
    if repo is None:
        return str(REPO_ROOT), "local"
    if not _GITHUB_REPO.match(repo):
        raise CommandError(f"--repo {repo!r} is not OWNER/NAME or OWNER/NAME:REF")
    return repo, "github"


def _chosen_entrypoints(repo: str, source: str, chosen: list[str] | None) -> list[str]:
    """The chosen model entrypoints (default: all) of this checkout, or of the GitHub repository as torch.hub lists them."""
    import torch

    listed = entrypoint_names() if source == "local" else torch.hub.list(repo, trust_repo=True, verbose=False)
    names = [name for name in listed if name != PROCESSING_UTILS]
    unknown = [name for name in chosen or [] if name not in names]
    if unknown:
        raise CommandError(f"--entrypoint {', '.join(unknown)}: not a model entrypoint of {repo}; "
                           f"valid: {', '.join(names)}")
    return [name for name in names if not chosen or name in chosen]


def _select(cases: list[Case], model_types: list[str] | None) -> list[Case]:
    """The cases of the chosen variants; entrypoints without variants are all kept."""
    if not model_types:
        return cases
    variants = {case.model_type.casefold(): case.model_type for case in cases if case.model_type}
    unknown = [model_type for model_type in model_types if model_type.casefold() not in variants]
    if unknown:
        raise CommandError(f"--model-type {', '.join(unknown)}: no such variant of the chosen entrypoints; "
                           f"valid: {', '.join(variants.values()) or 'none (they have no variants)'}")
    wanted = {model_type.casefold() for model_type in model_types}
    return [case for case in cases if case.model_type is None or case.model_type.casefold() in wanted]
