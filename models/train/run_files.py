"""A fine-tuning run on disk: ``last.pth`` (model and the whole training state) and ``best.pth`` (model).

Both are fine-tuned checkpoints (:mod:`models.weights.finetuned`): ``weights=<file>`` loads
either into a model. :func:`save_checkpoint` also writes a model alone as ``.safetensors`` (its
metadata in the file's header), which ``weights=<file>`` loads alike, without pickle. ``last.pth`` also holds, under ``"training"``, what ``--resume`` needs to go on
exactly as if the run had not stopped: the settings, the position (epoch and step), optimizer,
scheduler and gradient scaler states, every process's random generator states, the history of
losses and accuracies, and the best validation top-1 so far. Files are written atomically
(:mod:`models.files`: a planted link is replaced, never written through).
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..files import write_atomically
from ..weights.finetuned import (
    TRAINING_DIGESTS_KEY,
    FinetunedCheckpoint,
    recognise_finetuned,
)
from ..weights.loading import read_checkpoint
from ..weights.safetensors_io import SUFFIX as SAFETENSORS_SUFFIX
from ..weights.safetensors_io import write_safetensors

LAST = "last.pth"
BEST = "best.pth"


def save_checkpoint(path: Path, model: FinetunedCheckpoint, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` (and the training state, if any) to ``path`` atomically: a reader, or a run
    interrupted while writing, sees the old file or the new one, never half of one. A ``path`` ending in
    ``.safetensors`` gets the safetensors format, which holds the model only (no ``training``)."""
    record = model.to_record()
    if path.name.endswith(SAFETENSORS_SUFFIX):
        if training is not None:
            raise InvalidArgumentError(f"{path}: a safetensors file holds tensors and metadata, not a training "
                                       "state; save the run's last checkpoint as .pth")
        state_dict = record.pop("state_dict")
        record[TRAINING_DIGESTS_KEY] = record[TRAINING_DIGESTS_KEY].tolist()  # the header holds JSON
        write_safetensors(path, state_dict, metadata=record)
        return
    if training is not None:
        record["training"] = training
    write_atomically(path, functools.partial(torch.save, record))


def read_run(path: Path) -> tuple[FinetunedCheckpoint, dict[str, Any]]:
    """The model and training state of a ``last.pth``; an InvalidArgumentError if it holds none."""
    contents = read_checkpoint(path)
    model = recognise_finetuned(contents, str(path))
    if model is None or not isinstance(contents.get("training"), dict):
        raise InvalidArgumentError(f"resume=True: {path} is not the last.pth of a python3 -m models finetune run")
    return model, contents["training"]


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random generators: Python's, NumPy's, torch's CPU one and its GPU's."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": position,
                      "has_gauss": has_gauss, "gauss": gauss},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Put the generators back where :func:`rng_state` found them."""
    random.setstate(_as_tuples(state["python"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuples(value: Any) -> Any:
    """Python's generator state with its tuples back (a pickle may hand them back as lists)."""
    return tuple(_as_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value
