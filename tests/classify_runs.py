"""``python3 -m models classify`` with a seeded LeNet-5, as test_classify.py and test_classify_reporting.py run it."""

import subprocess
from pathlib import Path

from command_line import run_cli as run_command_line


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python3 -m models classify ARGS`` (in this process: see :func:`command_line.run_cli`)."""
    return run_command_line("classify", *args, timeout=timeout)


def model_args(weights: Path) -> list[str]:
    return ["--entrypoint", "lenet5", "--weights", str(weights), "--top-k", "3", "--no-progress"]
