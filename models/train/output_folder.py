"""The ``--output`` folder of a fine-tuning run: checked, created and locked before anything is trained.

A run holds an exclusive lock on ``OUT/.finetune.lock`` (as ``classify`` locks its output) for as
long as it goes on: a second run on the same folder is refused at once, whichever of the two has
written a checkpoint yet. Before the data is read or a step taken, the folder is created if need
be and a file is written in it and removed: a path through a file, a dangling link, a folder the
user cannot write are one-line errors naming ``--output``, not a failure after the first epoch. A
run that fails before writing a checkpoint removes the folder again if it made it. Under torchrun,
rank 0 alone does this and the other processes share its outcome.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import InvalidArgumentError, OutputInUseError
from ..files import NewFile
from . import distributed

LOCK_FILE = ".finetune.lock"


@contextlib.contextmanager
def held_output_folder(output: Path, processes: distributed.Processes) -> Iterator[None]:
    """Within it, ``output`` exists, is writable and is this run's alone (see the module's docstring)."""
    created, lock, problem = False, None, None
    if processes.is_main:
        try:
            created = _create(output)
            lock = _lock(output)
            with NewFile(output / "last.pth"):  # a file can be made and written here (then removed)
                pass
        except (InvalidArgumentError, OSError) as error:
            problem = error if isinstance(error, InvalidArgumentError) else InvalidArgumentError(
                f"--output {output}: cannot write there ({error.filename or output}: {error.strerror or error})")
    shared = distributed.all_gather(processes, None if problem is None else (type(problem), str(problem)))[0]
    try:
        if shared is not None:
            raise shared[0](shared[1])
        yield
    finally:
        if lock is not None:
            lock.release()
        if created:
            _remove_if_unused(output)


def _create(output: Path) -> bool:
    """Make ``output`` (and its parents) if it does not exist; whether it was made."""
    if output.is_symlink() and not output.exists():
        raise InvalidArgumentError(f"--output {output} is a link to {os.readlink(output)}, which does not exist")
    if output.exists():
        if not output.is_dir():
            raise InvalidArgumentError(f"--output {output} is a file, not a folder")
        return False
    try:
        output.mkdir(parents=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((parent for parent in output.parents if parent.exists() and not parent.is_dir()), None)
        raise InvalidArgumentError(f"--output {output}: {blocking or output.parent} is not a folder") from None
    return True


def _lock(output: Path) -> FileLock:
    lock = FileLock(output / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputInUseError(f"--output {output} is being written by another finetune run (it holds "
                               f"{lock.lock_file}): wait for that run to end, or choose another --output") from None
    return lock


def _remove_if_unused(output: Path) -> None:
    """Remove ``output`` (made by this run) if the run wrote nothing into it but its lock file."""
    try:
        if {entry.name for entry in os.scandir(output)} <= {LOCK_FILE}:
            (output / LOCK_FILE).unlink(missing_ok=True)
            output.rmdir()
    except OSError:  # someone else's file appeared in it: it stays
        pass
