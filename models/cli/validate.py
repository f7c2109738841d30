"""``python3 -m models validate --entrypoint E --data DIR``: top-1, top-5 and loss on a labelled image folder."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..wording import count
from .arguments import add_model_arguments, non_negative_int, positive_int
from .model_options import load_model

DEFAULT_WORKERS = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="top-1, top-5 and loss of a model on a folder of labelled images",
        description="Measure a model on DIR/<class>/<images>: the folders are ImageNet's synset ids (n01440764, "
                    "..., as in ImageNet's validation set sorted into folders) for an ImageNet model, or the "
                    "class names of a fine-tuned checkpoint (--weights OUT/best.pth). Images get the model's own "
                    "preprocessing. Prints one JSON line: images, top1, top5 (in %), loss (mean cross-entropy) and "
                    "trained_on: how many of the images a fine-tuned checkpoint was trained on (found by content; "
                    "a warning says so); with --model-math int8 also the float32 model's figures under \"fp32\".")
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="the image folder, one sub-folder per class")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per model call (default 64)")
    parser.add_argument("--workers", type=non_negative_int, default=min(DEFAULT_WORKERS, os.cpu_count() or 1),
                        help=f"decoding processes (default {DEFAULT_WORKERS}, at most the machine's cores; 0: in the "
                             "main process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime.int8 import is_int8
    from ..train.validation import validate_folder

    def measure(namespace: argparse.Namespace) -> tuple[dict, object]:
        model = load_model(namespace)
        metrics = validate_folder(model, args.data, batch_size=args.batch_size, workers=args.workers,
                                  device=args.device, progress=not args.no_progress)
        return model.pretrained_cfg, metrics

    cfg, metrics = measure(args)
    if metrics.trained_on:
        share = "all" if metrics.trained_on == metrics.images else f"{metrics.trained_on} of the"
        print(f"warning: {share} {count(metrics.images, 'image')} of {args.data} are among those {args.weights} was "
              "trained on: these figures are not held-out accuracy", file=sys.stderr)
    line = {"entrypoint": cfg["entrypoint"], "model_type": cfg["model_type"], "weights": cfg["id"] or cfg["checkpoint"],
            "data": args.data, "model_math": args.model_math.lower(), "images": metrics.images,
            "top1": metrics.top1, "top5": metrics.top5, "loss": metrics.loss, "trained_on": metrics.trained_on}
    if is_int8(args.model_math):  # beside the float32 model it was quantized from
        _, reference = measure(argparse.Namespace(**{**vars(args), "model_math": "fp32", "calibration": None}))
        line["fp32"] = {"top1": reference.top1, "top5": reference.top5, "loss": reference.loss}
    print(json.dumps(line))
    return 0
