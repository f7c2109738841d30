"""What commands print besides their output: one-line warnings without our source, no CUDA_HOME notice from
torch on CPU machines, the --optimize notice once, and counts in the singular and plural."""

import logging
import subprocess
import sys

import pytest
from command_line import run_cli
from conftest import REPO
from convnets_hub.models.cli.console_output import OPTIMIZE_NOTICE, command_output
from convnets_hub.models.wording import count


def test_warnings_are_one_line_without_the_source_line_and_only_while_the_command_runs():
    script = """
import warnings
import models  # this checkout, mounted as convnets_hub (as python3 -m models does)
from convnets_hub.models.cli.console_output import command_output
with command_output("python3 -m models classify"):
    warnings.warn("weights not pinned\\n  by a sha256", UserWarning, stacklevel=1)
warnings.warn("outside", UserWarning, stacklevel=1)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False,
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.splitlines()
    assert lines[0] == "python3 -m models classify: warning: weights not pinned by a sha256"
    assert lines[1:] == ["<string>:7: UserWarning: outside"], "outside a command: Python's own format"


def test_torchs_cuda_home_notice_is_not_shown():
    import torch.utils.cpp_extension  # noqa: F401 -- the logger as torch configures it

    logger = logging.getLogger("torch.utils.cpp_extension")
    shown = []
    handler = logging.Handler()
    handler.emit = lambda record: shown.append(record.getMessage())
    logger.addHandler(handler)
    try:
        with command_output("python3 -m models classify"):
            logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
            logger.warning("another warning")
        assert shown == ["another warning"]
        logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        assert len(shown) == 2, "outside a command torch's logging is as it was"
    finally:
        logger.removeHandler(handler)


def test_optimize_says_once_that_the_first_call_compiles(tmp_path):
    result = run_cli("classify", str(tmp_path / "missing.jpg"), "--entrypoint", "lenet5", "--optimize",
                     "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        OPTIMIZE_NOTICE, (f"python3 -m models classify: error: INPUT '{tmp_path / 'missing.jpg'}': no such file, "
                         "directory or URL")]
    assert "16-28 s for a ResNet-50" in OPTIMIZE_NOTICE


@pytest.mark.parametrize(("number", "text"), [(0, "0 files"), (1, "1 file"), (2, "2 files")])
def test_counts(number, text):
    assert count(number, "file") == text
    assert count(number, "class", "classes").endswith("class" if number == 1 else "classes")
