"""``python3 -m models validate --entrypoint E --data DIR``: top-1, top-5 and loss on a labelled image folder."""

from __future__ import annotations

import argparse
import json

from .arguments import add_model_arguments, non_negative_int, positive_int
from .entrypoints import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="top-1, top-5 and loss of a model on a folder of labelled images",
        description="Measure a model on DIR/<class>/<images>: the folders are ImageNet's synset ids (n01440764, "
                    "..., as in ImageNet's validation set sorted into folders) for an ImageNet model, or the "
                    "class names of a fine-tuned checkpoint (--weights OUT/best.pth). Images get the model's own "
                    "preprocessing. Prints one JSON line: images, top1, top5 (in %) and loss (mean cross-entropy); "
                    "with --model-math int8 also those of the float32 model under \"fp32\".")
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="the image folder, one sub-folder per class")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per model call (default 64)")
    parser.add_argument("--workers", type=non_negative_int, default=4,
                        help="decoding processes (default 4; 0: in the main process)")
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
    line = {"entrypoint": cfg["entrypoint"], "model_type": cfg["model_type"], "weights": cfg["id"] or cfg["checkpoint"],
            "data": args.data, "model_math": args.model_math.lower(), "images": metrics.images,
            "top1": metrics.top1, "top5": metrics.top5, "loss": metrics.loss}
    if is_int8(args.model_math):  # beside the float32 model it was quantized from
        _, reference = measure(argparse.Namespace(**{**vars(args), "model_math": "fp32", "calibration": None}))
        line["fp32"] = {"top1": reference.top1, "top5": reference.top5, "loss": reference.loss}
    print(json.dumps(line))
    return 0
