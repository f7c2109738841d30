"""``python3 -m models save-pretrained --entrypoint E [--weights W] DIR``: a model folder timm and the Hub read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import CommandError, add_model_arguments
from .model_options import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "save-pretrained", help="write a model as a folder that timm and the Hugging Face Hub read",
        description="Write the model of --entrypoint with --weights (a manifest id, a fine-tuned checkpoint such "
                    "as OUT/best.pth, a URL, a folder or hf-hub:org/name) into DIR: model.safetensors, timm's "
                    "config.json (architecture, num_classes, num_features, pretrained_cfg with label_names) and a "
                    "README.md model card. timm.create_model('local-dir:DIR', pretrained=True) loads it where timm "
                    "builds the architecture (ResNets, ResNeXts, EfficientNet-B0/B4); "
                    "torch.hub.load(repo, E, weights='DIR') always does.")
    add_model_arguments(parser, optimize=False, model_math=False)
    parser.add_argument("directory", metavar="DIR", help="the folder to write (created; its three files replaced)")
    parser.add_argument("--metrics", metavar="FILE", type=Path,
                        help="the JSON line that python3 -m models validate printed, for the model card")
    parser.set_defaults(run=run, model_math="fp32")


def run(args: argparse.Namespace) -> int:
    from ..sharing import save_pretrained

    metrics = _read_metrics(args.metrics) if args.metrics is not None else None
    directory = save_pretrained(load_model(args, optimize=False), args.directory, metrics=metrics)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    print(f"saved {directory} (architecture {config['architecture']}, {config['num_classes']} classes)")
    return 0


def _read_metrics(path: Path) -> dict:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        metrics = json.loads(lines[-1])
    except (OSError, IndexError, ValueError) as error:
        raise CommandError(f"--metrics {path}: not the JSON line of python3 -m models validate ({error})") from error
    if not isinstance(metrics, dict) or "top1" not in metrics:
        raise CommandError(f"--metrics {path}: not the JSON line of python3 -m models validate (no top1)")
    return metrics
