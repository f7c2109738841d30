"""A torchvision whose build does not match torch (a CPU torch beside a CUDA torchvision) is one line saying
what to reinstall, where we first import torchvision, not timm's traceback. The failure is simulated by a
torchvision that raises what a mismatched build raises on import."""

import os
import subprocess
import sys
from importlib import metadata

import torch
from conftest import REPO

BROKEN_TORCHVISION = "raise RuntimeError('operator torchvision::nms does not exist')\n"


# torch.hub.load first (its error as the interpreter would print it last, uncaught, on stdout), then, in the same
# process, what `python3 -m models ARGS` runs: a failed import is not cached, so each way in imports torchvision.
LIBRARY_THEN_COMMAND_LINE = """
import contextlib, io, runpy, sys, traceback, torch
try:
    with contextlib.redirect_stderr(io.StringIO()):
        torch.hub.load(".", "lenet5", source="local")
except Exception as error:
    print(traceback.format_exception_only(error)[-1], end="")
else:
    print("no error")
runpy.run_module("models", run_name="__main__", alter_sys=True)
"""


def test_a_mismatched_torchvision_is_one_line_with_the_reinstall_command(tmp_path):
    """The library (torch.hub.load) and the command line, in one process (a process costs seconds of imports)."""
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(BROKEN_TORCHVISION)
    (tmp_path / "data").mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "CONVNETS_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", LIBRARY_THEN_COMMAND_LINE, "validate", "--entrypoint", "lenet5",
                             "--no-pretrained", "--data", str(tmp_path / "data")], check=False, cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    build = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        (f"python3 -m models validate: error: torch {torch.__version__} and torchvision "
        f"{metadata.version('torchvision')} are builds that do not match (importing torchvision failed: "
        "RuntimeError: operator torchvision::nms does not exist); reinstall both from one index: python3 -m pip "
        f"install --force-reinstall torch torchvision --index-url https://download.pytorch.org/whl/{build}")]
    assert result.stdout.splitlines()[0].startswith("convnets_hub.processing.errors.MismatchedTorchvisionError: torch ")
