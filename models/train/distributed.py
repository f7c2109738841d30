"""Data parallelism under ``torchrun``: the process group, this process's rank and device, collectives.

``torchrun --nproc-per-node N -m models finetune ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment; without them a
run is one process (rank 0 of 1) and every collective here is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, shows progress and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(device: torch.device) -> tuple[Processes, torch.device]:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPUs) when there is one; returns this
    process's place and device (``cuda:LOCAL_RANK`` for a CUDA run)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Processes(), device
    processes = Processes(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        if device.index is not None:
            raise InvalidArgumentError(f"device={str(device)!r}: under torchrun give device='cuda'; each process "
                                       "takes the GPU of its LOCAL_RANK")
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return processes, device


def stop(processes: Processes) -> None:
    """Leave the process group (after the last collective)."""
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def sum_across(processes: Processes, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes (in place; itself in a single process)."""
    if processes.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_to_main(processes: Processes, value: Any) -> list[Any]:
    """Every process's ``value`` in rank order (what rank 0 receives; other ranks get ``[]``)."""
    if not processes.distributed:
        return [value]
    gathered = [None] * processes.world_size if processes.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered or []


def all_gather(processes: Processes, value: Any) -> list[Any]:
    """Every process's ``value`` in rank order, on every process."""
    if not processes.distributed:
        return [value]
    gathered: list[Any] = [None] * processes.world_size
    dist.all_gather_object(gathered, value)
    return gathered
