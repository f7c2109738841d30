"""Fine-tune a hub model on an image folder: the run behind ``python3 -m models finetune``.

The model comes from its entrypoint (pretrained backbone, fresh head for the folder's classes);
training uses AdamW or SGD (timm's optimizers in torch's fused implementation, no weight decay on
biases and norms), a cosine learning rate with linear warm-up per step (timm's scheduler), label
smoothing, autocast with bf16 or fp16 on a GPU (fp16 through a gradient scaler), channels_last on
a GPU, and optionally a frozen backbone (a linear probe) or torch.compile. After each epoch the model is validated (top-1, top-5,
loss) and ``last.pth`` written; ``best.pth`` when validation top-1 improves. ``resume=True`` goes on
from ``last.pth`` exactly. Ctrl-C stops a one-process run at the end of the step under way and
saves it (resumable within the epoch); under torchrun every process trains its share of each
global batch (DistributedDataParallel) and rank 0 alone prints and writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ...processing.transforms import PREPROCESS_KEYS
from ..builder import FreshClassifierWarning
from ..errors import DatasetError, InvalidArgumentError
from ..hub import create
from ..pretrained_config import update_pretrained_cfg
from ..runtime.precision import parse_device
from ..weights.finetuned import FinetunedCheckpoint
from ..weights.model_folder import built_for_weights
from . import distributed
from .data import (
    AugmentedImages,
    EpochSampler,
    ImageFolderData,
    PreprocessedImages,
    describe_unreadable,
    ignore_interrupts,
    image_folder_data,
    listing,
    unreadable_images,
)
from .file_digests import file_digests
from .finetune_settings import AMP, OPTIMIZERS, RUN_DEFINING, FinetuneSettings
from .loop import (
    EpochTotals,
    LocalEpoch,
    Metrics,
    StopRequest,
    TrainStep,
    evaluate,
    run_steps,
    set_train_mode,
)
from .output_folder import held_output_folder
from .run_files import (
    BEST,
    LAST,
    read_run,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


@dataclass(frozen=True)
class FinetuneResult:
    """Where the run's checkpoints are, its best validation top-1 and its history (one dict an epoch:
    epoch, lr, train_loss, train_acc, val_loss, val_top1, val_top5; and ``step_losses``)."""

    last: Path
    best: Path
    best_epoch: int
    best_top1: float
    history: list[dict[str, float]]
    step_losses: list[float]


def finetune(settings: FinetuneSettings) -> FinetuneResult:
    """Run (or, with ``settings.resume``, continue) a fine-tuning run; see the module's docstring.

    Bad settings or data raise InvalidArgumentError subclasses before any training, among them an
    ``--output`` that cannot be written and OutputInUseError for one that another run holds
    (:mod:`.output_folder`); Ctrl-C in a one-process run saves ``last.pth`` at the end of the step
    under way, then raises KeyboardInterrupt.
    """
    _check(settings)
    processes, device = distributed.start(parse_device(settings.device))
    try:
        with held_output_folder(Path(settings.output).expanduser(), processes):
            return _Run(settings, processes, device).run()
    finally:
        distributed.stop(processes)


def _check(settings: FinetuneSettings) -> None:
    for name in ("epochs", "batch_size"):
        if getattr(settings, name) < 1:
            raise InvalidArgumentError(f"{name}={getattr(settings, name)}: must be at least 1")
    if settings.workers < 0:
        raise InvalidArgumentError(f"workers={settings.workers}: must be at least 0")
    if settings.optimizer not in OPTIMIZERS:
        raise InvalidArgumentError(f"optimizer={settings.optimizer!r}: valid: {', '.join(OPTIMIZERS)}")
    if settings.amp not in AMP:
        raise InvalidArgumentError(f"amp={settings.amp!r}: valid: {', '.join(AMP)}")
    if settings.val_fraction is not None and not 0 < settings.val_fraction < 1:
        raise InvalidArgumentError(f"val_fraction={settings.val_fraction}: must be between 0 and 1")
    if not 0 <= settings.label_smoothing < 1:
        raise InvalidArgumentError(f"label_smoothing={settings.label_smoothing}: must be in [0, 1)")
    if settings.warmup_epochs is not None and not 0 <= settings.warmup_epochs <= settings.epochs:
        raise InvalidArgumentError(f"warmup_epochs={settings.warmup_epochs}: must be in [0, "
                                   f"epochs={settings.epochs}]")


def optimisation(model: nn.Module, settings: FinetuneSettings, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
    """timm's optimizer for the trainable parameters (no weight decay on biases and norms; torch's
    fused implementation, one kernel for all parameters) and a per-step cosine learning rate after
    a linear warm-up (timm's scheduler, stepped with ``step_update``)."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    defaults = OPTIMIZERS[settings.optimizer]
    lr = defaults["lr"] if settings.lr is None else settings.lr
    weight_decay = defaults["weight_decay"] if settings.weight_decay is None else settings.weight_decay
    optimizer = create_optimizer_v2(model, settings.optimizer, lr=lr, weight_decay=weight_decay,
                                    momentum=settings.momentum, fused=True)
    total = settings.epochs * steps_per_epoch
    warmup_epochs = min(1.0, settings.epochs / 10) if settings.warmup_epochs is None else settings.warmup_epochs
    warmup = min(total - 1, round(warmup_epochs * steps_per_epoch))
    scheduler = CosineLRScheduler(optimizer, t_initial=total - warmup, warmup_t=warmup, warmup_lr_init=lr / 100,
                                  warmup_prefix=True, t_in_epochs=False)
    return optimizer, scheduler


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` on ``device`` (None: float32): "auto" is bf16 on a GPU that
    has it, fp16 on an older GPU, float32 on a CPU."""
    if amp == "off" or (amp == "auto" and device.type == "cpu"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


class _Run:
    """One process's part of a run: its checked data, model, optimisation and position."""

    def __init__(self, settings: FinetuneSettings, processes: distributed.Processes, device: torch.device) -> None:
        self.settings, self.processes, self.device = settings, processes, device
        self.output = Path(settings.output).expanduser()
        self.amp_dtype = amp_dtype(settings.amp, device)
        self.channels_last = device.type == "cuda" if settings.channels_last is None else settings.channels_last
        if settings.sync_bn and device.type != "cuda":
            raise InvalidArgumentError("sync_bn=True needs CUDA devices (torch's SyncBatchNorm runs on GPUs only)")
        if settings.batch_size % processes.world_size:
            raise InvalidArgumentError(f"batch_size={settings.batch_size} (the global batch) does not divide "
                                       f"evenly between {processes.world_size} processes")
        self.local_batch = settings.batch_size // processes.world_size
        resumed = self._resumed_training()
        self.data = self._data(resumed)
        self.model = self._model(resumed)
        cfg = self.model.pretrained_cfg
        self.head = cfg["classifier"] if settings.freeze_backbone else None
        self.train_images = AugmentedImages(self.data.train, cfg, augment=settings.augment)
        self.sampler = EpochSampler(self.train_images, num_replicas=processes.world_size, rank=processes.rank,
                                    seed=settings.seed)
        if self.sampler.num_samples < self.local_batch:  # one smaller batch per epoch rather than none
            self.local_batch = self.sampler.num_samples
            self.say(f"--batch-size {settings.batch_size} is more than the {len(self.data.train)} training images of "
                     f"{settings.data}: training with batches of {self.local_batch * processes.world_size}")
        self.steps_per_epoch = self.sampler.num_samples // self.local_batch
        self.val_loader = self._loader(Subset(PreprocessedImages(self.data.val, cfg),
                                              range(processes.rank, len(self.data.val), processes.world_size)))
        self.optimizer, self.scheduler = optimisation(self.model, settings, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype is torch.float16)
        self.step = TrainStep(self._parallel(), self.optimizer, self.scheduler, self.scaler,
                              nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), device, self.amp_dtype)
        self.state = _State.fresh() if resumed is None else _State.restore(
            resumed, self.optimizer, self.scheduler, self.scaler, processes, device)

    def say(self, text: str) -> None:
        """A line on stdout from rank 0 (beside the progress bar)."""
        if self.processes.is_main:
            tqdm.write(text, file=sys.stdout)

    def run(self) -> FinetuneResult:
        state, epochs = self.state, self.settings.epochs
        if state.epoch >= epochs:
            self.say(f"the run in {self.output} has done its {epochs} epochs already")
        stop = StopRequest()
        # Under torchrun, Ctrl-C ends every process at once: last.pth keeps the last epoch's end.
        with stop.handling_interrupts() if not self.processes.distributed else contextlib.nullcontext():
            for epoch in range(state.epoch, epochs):
                totals = self._train(epoch, stop)
                if state.step < self.steps_per_epoch:
                    self._save()
                    self.say(f"interrupted in epoch {epoch + 1} after step {state.step}/{self.steps_per_epoch}: "
                             f"saved {self.output / LAST}; --resume goes on from there")
                    raise KeyboardInterrupt
                metrics = evaluate(self.model, self.val_loader, self.device, self.amp_dtype, self.processes,
                                   total=len(self.val_loader), progress=self.settings.progress)
                state.end_epoch(epoch, totals, metrics, self.optimizer)
                self._save()
                self.say(_epoch_line(state.history[-1], epochs, state.best_epoch == state.epoch))
                if stop.requested and state.epoch < epochs:
                    self.say(f"interrupted after epoch {state.epoch}: saved {self.output / LAST}; --resume goes on")
                    raise KeyboardInterrupt
        self.say(f"best validation top-1 {state.best_top1:.2f} % (epoch {state.best_epoch}): {self.output / BEST}")
        return FinetuneResult(self.output / LAST, self.output / BEST, state.best_epoch, state.best_top1,
                              state.history, state.step_losses)

    def _train(self, epoch: int, stop: StopRequest) -> EpochTotals:
        """Epoch ``epoch``'s steps from where the run is, until its end or a stop; returns its totals."""
        state = self.state
        self.sampler.set_epoch(epoch)
        self.sampler.skip = state.step * self.local_batch
        local = LocalEpoch(state.totals)
        set_train_mode(self.model, self.head)
        bar = tqdm(total=self.steps_per_epoch, initial=state.step, desc=f"epoch {epoch + 1}/{self.settings.epochs}",
                   unit="step", disable=not (self.settings.progress and self.processes.is_main), leave=False,
                   dynamic_ncols=True)
        with bar:
            state.step += run_steps(self.step, self._loader(self.train_images, self.sampler, drop_last=True), local,
                                    first_update=epoch * self.steps_per_epoch + state.step, stop=stop, bar=bar)
        return local.settle(self.processes)

    def _resumed_training(self) -> dict[str, Any] | None:
        """The training state of the run to resume (None for a new run), its settings checked."""
        last = self.output / LAST
        if not self.settings.resume:
            if last.exists():
                raise InvalidArgumentError(f"output={str(self.output)!r} already holds a run ({LAST}): "
                                           "resume=True goes on with it, or choose another output")
            return None
        if not last.is_file():
            raise InvalidArgumentError(f"resume=True: {last} does not exist")
        _, training = read_run(last)
        saved = training["settings"]
        differing = [name for name in RUN_DEFINING if saved.get(name) != getattr(self.settings, name)]
        if differing:
            raise InvalidArgumentError(f"resume=True: the run in {self.output} was started with "
                                       + ", ".join(f"{name}={saved.get(name)!r} (now {getattr(self.settings, name)!r})"
                                                   for name in differing))
        if training["world_size"] != self.processes.world_size:
            self.say(f"note: the run was saved by {training['world_size']} processes and goes on with "
                     f"{self.processes.world_size}: the same batches, other dropout draws")
        return training

    def _data(self, resumed: dict[str, Any] | None) -> ImageFolderData:
        """The data folder's classes and images, every image decoded once (shared between the processes)."""
        settings = self.settings
        data = image_folder_data(settings.data, settings.val_fraction, settings.seed)
        paths = [path for path, _ in data.train + data.val]
        mine = unreadable_images(paths[self.processes.rank::self.processes.world_size], workers=max(1, settings.workers),
                                 progress=settings.progress and self.processes.is_main)
        problems = sorted(problem for share in distributed.all_gather(self.processes, mine) for problem in share)
        if problems and not settings.skip_unreadable:
            raise DatasetError(f"data={str(settings.data)!r}: {describe_unreadable(problems)}; fix or delete them, "
                               "or pass --skip-unreadable")
        if problems:
            self.say(f"skipping {describe_unreadable(problems)}")
            bad = {path for path, _ in problems}
            data = ImageFolderData(data.classes, [s for s in data.train if s[0] not in bad],
                                   [s for s in data.val if s[0] not in bad])
            lacking = sorted(set(data.classes) - {data.classes[label] for _, label in data.train})
            if lacking:
                raise DatasetError(f"data={str(settings.data)!r}: classes without readable training images: "
                                   f"{listing(lacking)}")
        if resumed is not None and list(data.classes) != resumed["class_names"]:
            raise DatasetError(f"resume=True: {settings.data} has other classes than the run in {self.output}")
        self.train_digests = tuple(file_digests([path for path, _ in data.train], workers=max(1, settings.workers))) \
            if self.processes.is_main else ()  # rank 0 alone writes the checkpoints
        return data

    def _model(self, resumed: dict[str, Any] | None) -> nn.Module:
        """The entrypoint's model with a fresh head for the classes (or the resumed run's model)."""
        settings = self.settings
        kwargs: dict[str, Any] = {"device": self.device, "model_type": settings.model_type}
        torch.manual_seed(settings.seed)  # the same fresh head in every process and every run
        if resumed is not None:
            model = create(settings.entrypoint, weights=str(self.output / LAST), **kwargs)
        else:
            if settings.pretrained is not None:
                kwargs["pretrained"] = settings.pretrained
            with warnings.catch_warnings():  # expected here: said in one line below
                warnings.simplefilter("ignore", FreshClassifierWarning)
                model = create(settings.entrypoint, weights=settings.weights, num_classes=len(self.data.classes),
                               **kwargs)
            cfg = model.pretrained_cfg
            start = f"weights {cfg['id'] or cfg['checkpoint']}" if cfg["checkpoint"] else "random weights"
            self.say(f"{settings.entrypoint} ({start}) with a new {len(self.data.classes)}-class head "
                     f"{cfg['classifier']!r}; {len(self.data.train)} training and {len(self.data.val)} validation images")
            if settings.image_size is not None:
                channels = model.pretrained_cfg["input_size"][0]
                update_pretrained_cfg(model, input_size=(channels, settings.image_size, settings.image_size))
        update_pretrained_cfg(model, label_names=self.data.classes)
        self.pretrained_build = built_for_weights(model.pretrained_cfg)
        if settings.freeze_backbone:
            head = model.pretrained_cfg["classifier"]
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name.startswith(f"{head}."))
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def _parallel(self) -> nn.Module:
        """What the training step calls: the model, in DistributedDataParallel under torchrun, compiled if asked."""
        trained = self.model
        if self.processes.distributed:
            if self.settings.sync_bn:
                trained = nn.SyncBatchNorm.convert_sync_batchnorm(trained)
            trained = DistributedDataParallel(trained, device_ids=[self.device] if self.device.type == "cuda" else None)
        return torch.compile(trained) if self.settings.compile else trained

    def _loader(self, dataset: Any, sampler: Any = None, drop_last: bool = False) -> DataLoader:
        workers = self.settings.workers
        return DataLoader(dataset, batch_size=self.local_batch, sampler=sampler, drop_last=drop_last,
                          num_workers=workers, worker_init_fn=ignore_interrupts if workers else None,
                          pin_memory=self.device.type == "cuda")

    def _save(self) -> None:
        """``last.pth``; ``best.pth`` too at the end of the best epoch so far (every process calls it:
        rank 0 gathers the others' random generator states)."""
        state = self.state
        rng = distributed.gather_to_main(self.processes, rng_state(self.device))
        if not self.processes.is_main:
            return
        training = {"settings": dataclasses.asdict(self.settings), "class_names": list(self.data.classes),
                    "world_size": self.processes.world_size, "epoch": state.epoch, "step": state.step,
                    "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(), "rng": rng, "history": state.history,
                    "totals": dataclasses.asdict(state.totals), "step_losses": state.step_losses,
                    "best_top1": state.best_top1, "best_epoch": state.best_epoch}
        cfg = self.model.pretrained_cfg
        checkpoint = FinetunedCheckpoint(
            entrypoint=cfg["entrypoint"], model_type=cfg["model_type"], class_names=self.data.classes,
            preprocessing={key: cfg[key] for key in PREPROCESS_KEYS}, pretrained_build=self.pretrained_build,
            training_digests=self.train_digests,
            state_dict={key: value.detach().to("cpu", copy=True).contiguous()
                        for key, value in self.model.state_dict().items()})
        if state.step == 0 and state.best_epoch == state.epoch:
            save_checkpoint(self.output / BEST, checkpoint)
        save_checkpoint(self.output / LAST, checkpoint, training)


@dataclass
class _State:
    """Where a run is: epochs done, steps done in the next one (and their totals), history, best."""

    epoch: int
    step: int
    totals: EpochTotals
    history: list[dict[str, float]]
    step_losses: list[float]
    best_top1: float
    best_epoch: int

    @classmethod
    def fresh(cls) -> _State:
        return cls(0, 0, EpochTotals(), [], [], -1.0, 0)

    @classmethod
    def restore(cls, training: dict[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: torch.amp.GradScaler, processes: distributed.Processes, device: torch.device) -> _State:
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        scaler.load_state_dict(training["scaler"])
        states = training["rng"]
        restore_rng_state(states[processes.rank] if processes.rank < len(states) else states[0], device)
        return cls(training["epoch"], training["step"], EpochTotals(**training["totals"]), training["history"],
                   training["step_losses"], training["best_top1"], training["best_epoch"])

    def end_epoch(self, epoch: int, totals: EpochTotals, metrics: Metrics, optimizer: torch.optim.Optimizer) -> None:
        self.history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": totals.loss,
                             "train_acc": totals.accuracy, "val_loss": metrics.loss, "val_top1": metrics.top1,
                             "val_top5": metrics.top5})
        self.step_losses += totals.step_losses
        self.epoch, self.step, self.totals = epoch + 1, 0, EpochTotals()
        if metrics.top1 > self.best_top1:
            self.best_top1, self.best_epoch = metrics.top1, epoch + 1


def _epoch_line(row: dict[str, float], epochs: int, best: bool) -> str:
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.1f} % | "
            f"val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f} % top-5 {row['val_top5']:.2f} %"
            + (" (best)" if best else ""))

