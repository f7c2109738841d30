"""``python3 -m models ARGS`` as the tests run it: in this process (``run_cli``) or in a process of its own."""

import contextlib
import io
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import torch
from conftest import REPO


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            process: bool = False) -> subprocess.CompletedProcess:
    """``python3 -m models ARGS`` from the repository root, offline: its exit code, stdout and stderr.

    It runs the command line's ``main`` in this process (a new Python process costs seconds of imports
    per call), with the environment, working directory, standard streams and warning filters it would
    have in its own process, restored afterwards. ``process=True`` starts ``python3 -m models`` itself,
    for what only a process shows: what it imports, how long it takes to start, the mount.
    """
    environment = {**os.environ, "CONVNETS_HUB_OFFLINE": "1", **(env or {})}
    if process:
        return subprocess.run([sys.executable, "-m", "models", *args], check=False, cwd=REPO, env=environment,
                              capture_output=True, text=True, timeout=timeout)
    return _run_in_this_process(list(args), environment)


def _run_in_this_process(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    from convnets_hub.models.cli import main

    saved_environment, saved_directory, saved_threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.resetwarnings()  # a process starts with Python's default filters, not pytest's
            warnings.simplefilter("default")
            try:
                code = main(args)
            except SystemExit as exit:  # argparse: --help, and its one-line errors
                code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            except Exception:  # noqa: BLE001 -- as the interpreter would: a traceback and exit code 1
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        os.chdir(saved_directory)
        torch.set_num_threads(saved_threads)
    return subprocess.CompletedProcess([sys.executable, "-m", "models", *args], code, out.getvalue(), err.getvalue())


_HIDING_RUNNER = """
import json, runpy, sys
hidden, record = sys.argv[1], sys.argv[2]
for name in filter(None, hidden.split(",")):
    sys.modules[name] = None  # `import name` raises ModuleNotFoundError, as if it were not installed
sys.argv = ["models", *sys.argv[3:]]
try:
    runpy.run_module("models", run_name="__main__", alter_sys=True)
finally:
    if record:
        with open(record, "w") as file:
            json.dump(sorted(sys.modules), file)
"""


def run_cli_hiding(hidden: tuple[str, ...], *args: str, record: Path | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess:
    """``python3 -m models ARGS`` with the modules ``hidden`` (as if not installed), offline; with
    ``record``, the names of the modules the process had imported are written there as it ends."""
    environment = {**os.environ, "CONVNETS_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", _HIDING_RUNNER, ",".join(hidden), str(record or ""), *args],
                          check=False, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)
