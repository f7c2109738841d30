"""The settings of a fine-tuning run (a light module: the command line reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

OPTIMIZERS = {"adamw": {"lr": 5e-4, "weight_decay": 0.05}, "sgd": {"lr": 0.01, "weight_decay": 1e-4}}
"""timm's optimizer names (``sgd``: SGD with Nesterov momentum) and their default learning rate and weight decay."""
AMP = ("auto", "off", "bf16", "fp16")
DEFAULT_VAL_FRACTION = 0.1
"""The share of each class held out for validation from a data folder without ``val/``."""
RUN_DEFINING = ("entrypoint", "model_type", "weights", "pretrained", "data", "val_fraction", "epochs", "batch_size",
                "optimizer", "lr", "weight_decay", "momentum", "warmup_epochs", "label_smoothing", "amp",
                "freeze_backbone", "augment", "image_size", "seed", "skip_unreadable", "sync_bn")
"""The settings that change what is computed: a resumed run must have the same ones."""


@dataclass(frozen=True)
class FinetuneSettings:
    """A fine-tuning run. ``batch_size`` is the global batch, split evenly between torchrun's processes;
    ``lr``/``weight_decay`` default by optimizer (:data:`OPTIMIZERS`); ``warmup_epochs`` defaults to a
    tenth of the run, at most one epoch; ``pretrained=None`` is the entrypoint's default;
    ``channels_last=None`` means on a GPU only; ``amp="auto"`` is bf16 on a GPU that has it, fp16 on
    another GPU, float32 on a CPU; ``val_fraction=None`` is :data:`DEFAULT_VAL_FRACTION` for a data
    folder without ``val/`` (and must be None for one with it)."""

    entrypoint: str
    data: str
    output: str
    model_type: str | None = None
    weights: str | None = None
    pretrained: bool | None = None
    device: str = "cpu"
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_epochs: float | None = None
    label_smoothing: float = 0.1
    amp: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    freeze_backbone: bool = False
    augment: bool = True
    image_size: int | None = None
    val_fraction: float | None = None
    seed: int = 0
    workers: int = 4
    skip_unreadable: bool = False
    sync_bn: bool = False
    resume: bool = False
    progress: bool = True
