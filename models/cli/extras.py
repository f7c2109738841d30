"""The optional requirements of some commands: a missing one is one line naming the file to install."""

from __future__ import annotations

import importlib.util

from .arguments import CommandError

REQUIREMENTS_FILES = {
    "pyarrow": "requirements-batch.txt", "ray": "requirements-batch.txt",
    "onnx": "requirements-export.txt", "onnxscript": "requirements-export.txt",
    "onnxruntime": "requirements-export.txt",
    "pytriton": "requirements-deploy.txt", "huggingface_hub": "requirements-hub.txt",
}
"""Each optional module (as imported) and the requirements file of the repository that installs it."""


def require(purpose: str, *modules: str) -> None:
    """A CommandError (exit code 1) naming the requirements file to install when one of ``modules``
    is not installed; checked before any model is loaded, without importing the modules."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        files = " -r ".join(dict.fromkeys(REQUIREMENTS_FILES[name] for name in missing))
        raise CommandError(f"{purpose} needs {', '.join(missing)}, which is not installed: "
                           f"python3 -m pip install -r {files}", exit_code=1)
