"""Training-step images/s of ``python3 -m models finetune`` against the same loop written plainly with timm.

Both rows train the same network from the same weights on the same batches, in one process, their
passes interleaved (ours, peer, ours, peer...), so load drift hits both alike:

* timm, plain loop: ``timm.create_model(<arch>)``, ``create_optimizer_v2(model, "adamw")`` (torch's
  default implementation), ``CosineLRScheduler`` with warm-up stepped per update,
  ``CrossEntropyLoss(label_smoothing=0.1)``; ``zero_grad``, ``backward``, ``step`` — under autocast when
  ``--amp`` asks for it, compiled with ``--compile``;
* finetune's step: the entrypoint's model (``num_classes=10``, the peer's weights loaded), the
  optimizer and schedule of ``models.train.trainer.optimisation`` and ``models.train.loop.TrainStep``,
  with the same ``--amp`` and ``--compile``, channels_last where finetune uses it (a GPU).

Figures are the median step time of ``--steps`` timed steps a pass (after 2 untimed ones), as
images/s; "ratio" is ours over the peer's. Eager fp32 on a CPU by default; on a GPU pass
``--device cuda --amp bf16`` (and ``--compile``).

    python3 benchmarks/bench_finetune.py [--entrypoint resnet18_ssl] [--arch resnet18] [--batch-size 32]
        [--image-size 112] [--steps 8] [--passes 3] [--threads N] [--device cpu] [--amp off] [--compile]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
importlib.import_module("models")  # mounts this checkout's library as convnets_hub.models

from convnets_hub.models.hub import entrypoint
from convnets_hub.models.train.finetune_settings import FinetuneSettings
from convnets_hub.models.train.loop import TrainStep
from convnets_hub.models.train.trainer import optimisation

CLASSES = 10
AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def peer_step(model: nn.Module, settings: FinetuneSettings, steps: int, device: torch.device,
              amp: torch.dtype | None, compile: bool) -> Callable[[torch.Tensor, torch.Tensor, int], None]:
    """The plain timm loop's step."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    optimizer = create_optimizer_v2(model, "adamw", lr=5e-4, weight_decay=0.05)
    scheduler = CosineLRScheduler(optimizer, t_initial=steps - 1, warmup_t=1, warmup_lr_init=5e-6, warmup_prefix=True,
                                  t_in_epochs=False)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    forward = torch.compile(model) if compile else model

    def step(images: torch.Tensor, targets: torch.Tensor, update: int) -> None:
        images, targets = images.to(device), targets.to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = loss_fn(forward(images), targets)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step_update(num_updates=update)

    return step


def our_step(model: nn.Module, settings: FinetuneSettings, steps: int, device: torch.device,
             amp: torch.dtype | None, compile: bool) -> TrainStep:
    """finetune's step, set up as finetune sets it up."""
    optimizer, scheduler = optimisation(model, settings, steps)
    return TrainStep(torch.compile(model) if compile else model, optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=amp is torch.float16),
                     nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), device, amp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entrypoint", default="resnet18_ssl")
    parser.add_argument("--arch", default="resnet18", help="the timm architecture of the entrypoint")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=8, help="timed steps a pass")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=tuple(AMP), default="off")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, amp = torch.device(args.device), AMP[args.amp]
    torch.manual_seed(0)
    peer = timm.create_model(args.arch, num_classes=CLASSES).to(device)
    ours = entrypoint(args.entrypoint)(pretrained=False, num_classes=CLASSES, device=device)
    ours.load_state_dict(peer.state_dict())
    if device.type == "cuda":  # as finetune does there
        ours.to(memory_format=torch.channels_last)
    total = args.passes * (args.steps + 2)
    settings = FinetuneSettings(entrypoint=args.entrypoint, data="", output="", epochs=1, warmup_epochs=1 / total)
    rows = {"timm, plain loop": peer_step(peer, settings, total, device, amp, args.compile),
            "finetune's step": our_step(ours, settings, total, device, amp, args.compile)}
    peer.train()
    ours.train()
    batches = [(torch.randn(args.batch_size, 3, args.image_size, args.image_size),
                torch.randint(0, CLASSES, (args.batch_size,))) for _ in range(args.steps + 2)]
    times: dict[str, list[float]] = {name: [] for name in rows}
    updates = dict.fromkeys(rows, 0)
    for _ in range(args.passes):
        for name, step in rows.items():
            for index, (images, targets) in enumerate(batches):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                updates[name] += 1
                step(images, targets, updates[name])
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if index >= 2:
                    times[name].append(time.perf_counter() - start)
    images_per_s = {name: args.batch_size / statistics.median(values) for name, values in times.items()}
    peer_rate = images_per_s["timm, plain loop"]
    print(f"{args.arch} ({args.entrypoint}), batch {args.batch_size} at {args.image_size} px, {args.device}, "
          f"amp {args.amp}{', compiled' if args.compile else ''}, {torch.get_num_threads()} threads")
    print("| loop | img/s | ratio |\n|---|---|---|")
    for name, rate in images_per_s.items():
        print(f"| {name} | {rate:.1f} | {rate / peer_rate:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "images_per_s": images_per_s}, indent=1))


if __name__ == "__main__":
    main()
