"""Training and validation epochs: the optimisation step, its bookkeeping, top-1/top-5 and loss.

Per-step figures stay on the device and are read once per epoch (and every few steps for the
progress bar), so a GPU is not made to wait for the CPU at every step. Under torchrun, the
losses and counts are summed over the processes: every figure is the whole global batch's.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .distributed import Processes, sum_across

PROGRESS_EVERY = 10  # steps between two updates of the progress bar's loss and accuracy


@dataclass(frozen=True)
class Metrics:
    """Validation figures: mean cross-entropy, top-1 and top-5 accuracy in percent, images counted (and,
    for ``validate``, how many of them the model was trained on)."""

    loss: float
    top1: float
    top5: float
    images: int
    trained_on: int = 0
    """Images of the validation data that the (fine-tuned) model was trained on, found by content."""


@dataclass
class EpochTotals:
    """A training epoch's figures so far: each step's mean loss (over the global batch), correct
    top-1 predictions and images seen. Read back from the device by :meth:`settle`."""

    step_losses: list[float] = field(default_factory=list)
    correct: int = 0
    seen: int = 0

    @property
    def loss(self) -> float:
        return sum(self.step_losses) / max(1, len(self.step_losses))

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / max(1, self.seen)


class TrainStep:
    """One optimisation step: forward under autocast (``amp_dtype``; None: float32), loss, backward
    through the gradient scaler, optimizer step, then the learning rate of the next update."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 scaler: torch.amp.GradScaler, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 device: torch.device, amp_dtype: torch.dtype | None) -> None:
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.loss_fn, self.device, self.amp_dtype = loss_fn, device, amp_dtype

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, update: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's mean loss and number of correct top-1 predictions (device tensors);
        ``update`` is the number of optimizer steps done once this one is."""
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            logits = self.model(images)
            loss = self.loss_fn(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step_update(num_updates=update)
        return loss.detach(), (logits.argmax(dim=1) == targets).sum()


class LocalEpoch:
    """The device-side figures of this process's steps in one epoch, until they are settled."""

    def __init__(self, totals: EpochTotals) -> None:
        self.totals = totals
        self.losses: list[torch.Tensor] = []
        self.correct: torch.Tensor | int = 0
        self.seen = 0

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int) -> None:
        self.losses.append(loss)
        self.correct = self.correct + correct
        self.seen += images

    def running(self) -> dict[str, str]:
        """The progress bar's figures: the mean loss of the last steps, the accuracy since the epoch
        (or its resumption) began; this process's."""
        losses = torch.stack(self.losses[-PROGRESS_EVERY:]).float().mean().item()
        return {"loss": f"{losses:.4f}", "acc": f"{100.0 * float(self.correct) / max(1, self.seen):.1f}%"}

    def settle(self, processes: Processes) -> EpochTotals:
        """Add the steps to the totals, summed over the processes (a collective: every process calls it)."""
        if not self.losses:
            return self.totals
        losses = sum_across(processes, torch.stack(self.losses).double()) / processes.world_size
        counts = sum_across(processes, torch.stack([torch.as_tensor(self.correct, dtype=torch.float64,
                                                                    device=losses.device),
                                                    torch.tensor(float(self.seen), dtype=torch.float64,
                                                                 device=losses.device)]))
        self.totals.step_losses += losses.tolist()
        self.totals.correct += int(counts[0].item())
        self.totals.seen += int(counts[1].item())
        self.losses, self.correct, self.seen = [], 0, 0
        return self.totals


def run_steps(step: TrainStep, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], local: LocalEpoch, *,
              first_update: int, stop: StopRequest, bar: tqdm) -> int:
    """Train on ``batches`` until they end or a stop is requested (then after the step under way);
    returns the number of steps done."""
    done = 0
    for images, targets in batches:
        loss, correct = step(images, targets, first_update + done + 1)
        local.add(loss, correct, len(images))
        done += 1
        bar.update(1)
        last = bar.n == bar.total
        if not bar.disable and (done == 1 or done % PROGRESS_EVERY == 0 or last):
            bar.set_postfix(local.running(), refresh=last)
        if stop.requested:
            break
    return done


def set_train_mode(model: nn.Module, head: str | None) -> None:
    """``model.train()``; with ``head`` (a frozen backbone), only the head's modules train: the
    backbone's BatchNorms keep their statistics and its dropout is off."""
    model.train()
    if head is None:
        return
    for name, module in model.named_modules():
        if name != head and not name.startswith(f"{head}."):
            module.training = False


def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
             amp_dtype: torch.dtype | None, processes: Processes, *, total: int | None = None,
             progress: bool = True, description: str = "validating") -> Metrics:
    """Mean cross-entropy, top-1 and top-5 (in %) of ``model`` (eval mode, no gradients) on the
    batches, summed over the processes (each gives its share of the images)."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1, top-5, images
    bar = tqdm(batches, total=total, desc=description, unit="batch", disable=not (progress and processes.is_main),
               leave=False, dynamic_ncols=True)
    with torch.inference_mode():
        for images, targets in bar:
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(images)
            logits = logits.float()
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices == targets[:, None]
            sums += torch.stack([F.cross_entropy(logits, targets, reduction="sum").double(),
                                 best[:, 0].sum().double(), best.any(dim=1).sum().double(),
                                 torch.tensor(float(len(targets)), dtype=torch.float64, device=device)])
    loss, top1, top5, images = sum_across(processes, sums).tolist()
    return Metrics(loss / max(1.0, images), 100.0 * top1 / max(1.0, images), 100.0 * top5 / max(1.0, images),
                   int(images))


class StopRequest:
    """Ctrl-C (SIGINT) as a request: the run stops at the end of the step under way, saves and
    exits; a second Ctrl-C interrupts at once. Outside the main thread, Ctrl-C keeps its default."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def handling_interrupts(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGINT)

        def request(_signum: int, _frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, request)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
