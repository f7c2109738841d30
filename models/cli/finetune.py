"""``python3 -m models finetune --entrypoint E --data DIR --output OUT``: fine-tune a model on an image folder."""

from __future__ import annotations

import argparse
import os

from ..train.finetune_settings import (
    AMP,
    DEFAULT_VAL_FRACTION,
    OPTIMIZERS,
    FinetuneSettings,
)
from .arguments import add_model_arguments, non_negative_int, positive_int

DEFAULTS = FinetuneSettings(entrypoint="", data="", output="")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a model on a folder of images (one sub-folder per class)",
        description="Fine-tune a hub model (its pretrained backbone and a new head for your classes) on DIR in "
                    "torchvision's ImageFolder layout: DIR/train/<class>/... and DIR/val/<class>/..., or "
                    "DIR/<class>/... split by --val-fraction. The model's own preprocessing with timm's "
                    "standard augmentation; AdamW or SGD with a cosine schedule and warm-up, label smoothing, "
                    "mixed precision and channels_last on a GPU. After each epoch: validation top-1/top-5 and "
                    "OUT/last.pth (resumable); OUT/best.pth by validation top-1. Both load with --weights "
                    "(classify, export, serve, validate) or weights= in torch.hub.load, with your class names. "
                    "Ctrl-C saves and stops; --resume goes on exactly. Under torchrun --nproc-per-node N, "
                    "the processes train data-parallel (DistributedDataParallel).")
    add_model_arguments(parser, optimize=False, model_math=False)
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="DIR", help="the image folder (see above)")
    data.add_argument("--val-fraction", type=float, metavar="F",
                      help="for a DIR without train/ and val/: the share of each class's images held out for "
                           f"validation (default {DEFAULT_VAL_FRACTION})")
    data.add_argument("--image-size", type=positive_int, metavar="PX",
                      help="train (and later infer) at PX x PX instead of the model's own input size")
    data.add_argument("--no-augment", dest="augment", action="store_false",
                      help="train on the validation preprocessing (no random crops, flips or colour jitter)")
    data.add_argument("--skip-unreadable", action="store_true",
                      help="leave out images that do not decode (default: list them and stop)")
    data.add_argument("--workers", type=non_negative_int, default=min(DEFAULTS.workers, os.cpu_count() or 1),
                      help=f"data loading processes (default {DEFAULTS.workers}, at most the machine's cores; 0: in "
                           "the main process)")
    training = parser.add_argument_group("training")
    training.add_argument("--output", required=True, metavar="OUT", help="the folder of last.pth and best.pth")
    training.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs, help=f"default {DEFAULTS.epochs}")
    training.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                          help=f"images per step, all processes together (default {DEFAULTS.batch_size})")
    training.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default=DEFAULTS.optimizer,
                          help=f"default {DEFAULTS.optimizer} (timm's; sgd: with Nesterov momentum)")
    training.add_argument("--lr", type=float, help="peak learning rate (default: " + ", ".join(
        f"{values['lr']} {name}" for name, values in OPTIMIZERS.items()) + ")")
    training.add_argument("--weight-decay", type=float, help="default: " + ", ".join(
        f"{values['weight_decay']} {name}" for name, values in OPTIMIZERS.items()) + " (none on biases and norms)")
    training.add_argument("--momentum", type=float, default=DEFAULTS.momentum,
                          help=f"sgd's momentum (default {DEFAULTS.momentum})")
    training.add_argument("--warmup-epochs", type=float, metavar="E",
                          help="linear warm-up (default: a tenth of the epochs, at most 1)")
    training.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing,
                          help=f"default {DEFAULTS.label_smoothing}")
    training.add_argument("--freeze-backbone", action="store_true",
                          help="train the head alone (a linear probe); the backbone's BatchNorm statistics stay")
    training.add_argument("--amp", choices=AMP, default=DEFAULTS.amp,
                          help="autocast precision (auto: bf16 on GPUs that have it, else fp16; off on a CPU)")
    training.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                          help="channels_last memory format (default: on a GPU)")
    training.add_argument("--compile", action="store_true", help="torch.compile the training step's model")
    training.add_argument("--sync-bn", action="store_true",
                          help="under torchrun on GPUs: BatchNorm statistics over the global batch")
    training.add_argument("--seed", type=int, default=DEFAULTS.seed,
                          help=f"shuffling, augmentation, the new head (default {DEFAULTS.seed})")
    training.add_argument("--resume", action="store_true", help="go on with the run in OUT (same arguments)")
    training.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The training package is imported here: the other commands start without it.
    from ..train.trainer import finetune
    from .model_options import check_entrypoint

    check_entrypoint(args.entrypoint)  # an unknown name: the one-line error listing the valid ones
    settings = FinetuneSettings(
        entrypoint=args.entrypoint, model_type=args.model_type, weights=args.weights,
        pretrained=False if args.no_pretrained else None, device=args.device, data=args.data, output=args.output,
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, momentum=args.momentum, warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        freeze_backbone=args.freeze_backbone, augment=args.augment, image_size=args.image_size,
        val_fraction=args.val_fraction, seed=args.seed, workers=args.workers, skip_unreadable=args.skip_unreadable,
        sync_bn=args.sync_bn, resume=args.resume, progress=not args.no_progress)
    finetune(settings)
    return 0
