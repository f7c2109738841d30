"""What a command prints besides its own output: warnings as one line each, without torch's noise.

Python prints a warning as ``file:line: Category: message`` followed by the line of source that
issued it (often ours): a command prints ``<prog>: warning: message`` instead. torch logs "No CUDA
runtime is found, using CUDA_HOME=..." on every CPU machine that has a CUDA toolkit directory when
torch.compile or an extension loads: a command does not show it. Both only while the command runs:
the library, used from Python, leaves warnings and logging as they are.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

CUDA_HOME_LOGGER = "torch.utils.cpp_extension"
OPTIMIZE_NOTICE = ("--optimize: the model compiles (torch.compile) at its first call, which takes a while "
                   "(16-28 s for a ResNet-50 on 2 CPU cores, more for larger models and GPUs' CUDA graphs); "
                   "the calls after it are fast")
"""Said once by the commands given ``--optimize`` (figures: benchmarks/RESULTS.md)."""


def _not_cuda_home_noise(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No CUDA runtime is found")


@contextlib.contextmanager
def command_output(prog: str) -> Iterator[None]:
    """One-line warnings (``<prog>: warning: message``) and no CUDA_HOME notice, until the block ends."""
    def one_line(message, category, filename, lineno, line=None) -> str:
        return f"{prog}: warning: {' '.join(str(message).split())}\n"

    logger = logging.getLogger(CUDA_HOME_LOGGER)
    previous_format = warnings.formatwarning
    warnings.formatwarning = one_line
    logger.addFilter(_not_cuda_home_noise)
    try:
        yield
    finally:
        warnings.formatwarning = previous_format
        logger.removeFilter(_not_cuda_home_noise)
