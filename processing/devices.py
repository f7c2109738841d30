"""Devices named by the user (a model's ``device=``, NVIDIA's ``cuda=``): checked once, with one clear error."""

from __future__ import annotations

from typing import Any

import torch

from .errors import ProcessingArgumentError


def parse_device(value: Any, argument: str = "device") -> torch.device:
    """The ``torch.device`` of ``argument=value``: None or False is the CPU, True the current GPU, else a
    name or ``torch.device`` of the CPU or of a CUDA GPU that this machine has."""
    if value is None or value is False:
        return torch.device("cpu")
    if value is True:
        value = "cuda"
    if not isinstance(value, (str, torch.device)):
        raise ProcessingArgumentError(f"{argument}={value!r} is not a device; give a string such as 'cpu' or 'cuda:0'")
    try:
        device = torch.device(value)
    except RuntimeError as error:
        raise ProcessingArgumentError(f"{argument}={value!r} is not a device ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ProcessingArgumentError(f"{argument}={value!r}: CUDA is not available on this machine "
                                          "(torch.cuda.is_available() is False: no GPU, or a CPU-only torch)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ProcessingArgumentError(f"{argument}={value!r}: there are only {torch.cuda.device_count()} "
                                          "CUDA devices")
    elif device.type != "cpu":
        raise ProcessingArgumentError(f"{argument}={value!r}: only 'cpu' and 'cuda' devices are supported")
    return device
