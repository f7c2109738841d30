"""The output file: rows are saved as they come, the final file appears atomically, ``--resume`` goes on.

While a run goes on, it holds an exclusive lock on ``.<OUT>.lock`` beside OUT (a second run on the
same OUT is refused at once), and every batch of rows is one part in ``.<OUT>.parts/``, in OUT's
format, named after the run and the batch (each written to a new temporary file, then renamed): a
crash loses at most the batches in flight. ``finish`` writes OUT's previous rows and the parts, once
per path, to a new temporary file renamed over OUT, then removes the parts. Temporary files are
created exclusively (:class:`..files.NewFile`): a file or link already at such a name is never
written through. The lock file is removed when the run ends, whether it published OUT or failed
(a run that finds the lock file gone after acquiring it locks the new one). JSON lines are read and written without
pyarrow (a list of rows where Parquet has a table).

Paths are compared by :func:`.inputs.source_key` (one row per file however it is spelled). A file
name that is not UTF-8 (which Python gives with surrogate escapes, as ``os.fsdecode`` does) is
written losslessly in JSON lines (``\\udcNN`` escapes, which ``json.loads`` reads back as the same
string) and as ``\\xNN`` in Parquet, which holds UTF-8 only (:func:`.schema.utf8_text`; the Ray
engine, whose batches are Arrow tables, writes ``\\xNN`` in both).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from filelock import FileLock, Timeout

from ..errors import InvalidArgumentError, OutputInUseError
from ..files import NewFile
from .inputs import source_key
from .schema import to_table, utf8_row, utf8_text

if TYPE_CHECKING:
    import pyarrow as pa

Rows = list[dict[str, Any]]

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
ROW_GROUP_ROWS = 65536


class ResultStore:
    """OUT (``.parquet``/``.pq`` or ``.jsonl``/``.ndjson``) and its parts.

    ``resume``: the paths already in OUT or in the parts of an interrupted run are ``done`` and
    kept; with ``retry_errors``, only those whose row has no error: a new row of a path replaces
    its error row. Otherwise an existing OUT or parts are an InvalidArgumentError unless
    ``overwrite``. Another ResultStore on OUT that is still open (in any process) is an
    OutputInUseError. ``finish`` or ``close`` releases OUT for the next run.
    """

    def __init__(self, output: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
                 retry_errors: bool = False) -> None:
        self.output = Path(output)
        self.format = FORMATS.get(self.output.suffix.lower())
        if self.format is None:
            raise InvalidArgumentError(f"output={str(output)!r}: the name must end in "
                                       f"{', '.join(FORMATS)} (the format)")
        if not self.output.parent.is_dir():
            raise InvalidArgumentError(f"output={str(output)!r}: no such directory {str(self.output.parent)!r}")
        self.parts = self.output.parent / f".{self.output.name}.parts"
        self._lock = FileLock(self.output.parent / f".{self.output.name}.lock", timeout=0)
        self._acquire(str(output))
        try:
            self._start(str(output), resume, overwrite, retry_errors)
        except BaseException:
            self.close()
            raise
        # Parts sort by the run's start, then by batch; the random part keeps two runs' names apart.
        self._run = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        self._numbers = itertools.count()

    def _acquire(self, output: str) -> None:
        for _ in range(3):  # a run that ends removes the lock file: lock the one now at the path
            try:
                self._lock.acquire()
            except Timeout:
                raise OutputInUseError(f"output={output!r} is being written by another run (it holds "
                                       f"{self._lock.lock_file!r}): wait for that run to end, or choose another "
                                       "output") from None
            if _locks_the_file_at_its_path(self._lock):
                return
            self._lock.release()
        raise OutputInUseError(f"output={output!r}: other runs keep starting and ending on it; try again")

    def _start(self, output: str, resume: bool, overwrite: bool, retry_errors: bool) -> None:
        if (self.output.exists() or self._part_files()) and not resume:
            if not overwrite:
                raise InvalidArgumentError(f"output={output!r} exists (or an interrupted run's parts): "
                                           "pass resume=True to go on with it or overwrite=True to start over")
            shutil.rmtree(self.parts, ignore_errors=True)
        self.keep_output = resume
        self._done: set[str] = set()  # the _key of each saved path (with its error, unless retry_errors)
        failed, classified = set(), set()
        try:
            for table in self._saved_tables():
                for path, error in zip(_column(table, "path"), _column(table, "error"), strict=True):
                    key = _key(path)
                    (failed if error else classified).add(key)
                    if not (retry_errors and error):
                        self._done.add(key)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"output={output!r} cannot be resumed: {error}; pass overwrite=True to "
                                       "start over (or move the file away)") from None
        self._only_errors = failed - classified

    def is_done(self, source: str) -> bool:
        """Whether ``source`` has a saved row (compared by :func:`_key`: any spelling of the same
        local path, relative to the current directory)."""
        return _key(source) in self._done

    def failed_before(self, sources: Iterable[str]) -> int:
        """How many of ``sources`` have only error rows saved (``--retry-errors`` classifies them again)."""
        return sum(_key(source) in self._only_errors for source in sources)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Save ``rows`` now (one part file); paths already done are dropped."""
        fresh = [row for row in rows if not self.is_done(row["path"])]
        if not fresh:
            return
        self.parts.mkdir(exist_ok=True)
        part = self.parts / f"part-{self._run}-{next(self._numbers):08d}.{self.format}"
        with NewFile(part) as file:
            with _TableWriter(file.file, self.format) as write:
                write(fresh)
            file.publish()
        self._done.update(_key(row["path"]) for row in fresh)

    def finish(self) -> int:
        """Publish OUT atomically with every saved row, once per path, and release OUT; returns the
        number of rows.

        A path's row is its first, unless that row has an error and a later one was saved (a retry).
        """
        chosen: dict[str, tuple[int, int, bool]] = {}  # source key: (table, row, whether the row has an error)
        for number, table in enumerate(self._saved_tables()):
            errors = _column(table, "error")
            for index, path in enumerate(_column(table, "path")):
                key = _key(path)
                if key not in chosen or chosen[key][2]:
                    chosen[key] = (number, index, bool(errors[index]))
        keep = {(number, index) for number, index, _ in chosen.values()}
        with NewFile(self.output) as file:
            with _TableWriter(file.file, self.format) as write:
                for number, table in enumerate(self._saved_tables()):
                    write(_select(table, [(number, index) in keep for index in range(len(table))]))
            file.publish()
        shutil.rmtree(self.parts, ignore_errors=True)
        self.close()
        return len(chosen)

    def close(self) -> None:
        """Release OUT without publishing (the parts stay for ``--resume``) and remove the lock file;
        ``finish`` does it too."""
        if self._lock.is_locked:
            with contextlib.suppress(OSError):  # removed while locked: no other run can hold it
                Path(self._lock.lock_file).unlink()
            self._lock.release()

    def _part_files(self) -> list[Path]:
        return sorted(part for part in self.parts.glob("part-*") if part.suffix in (".parquet", ".jsonl")) \
            if self.parts.is_dir() else []

    def _saved_tables(self) -> Iterator[pa.Table | Rows]:
        if self.keep_output and self.output.exists():
            yield _read(self.output)
        for part in self._part_files():
            yield _read(part)


def _locks_the_file_at_its_path(lock: FileLock) -> bool:
    """Whether the file that ``lock`` holds is still the one at its path (not one a finished run removed)."""
    descriptor = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if descriptor is None:  # a filelock that does not say: trust it
        return True
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(lock.lock_file))
    except OSError:
        return False


def _key(path: str) -> str:
    """What identifies a row's input: ``source_key`` of the path as UTF-8 text (a name that is not
    UTF-8 compares equal whether a row holds it losslessly, in JSON lines, or as ``\\xNN``)."""
    return source_key(utf8_text(path))


def read_results(path: str | os.PathLike) -> pa.Table:
    """A result file (Parquet or JSON lines) as a table of ``SCHEMA`` (whose text is UTF-8: see
    :func:`.schema.utf8_text`)."""
    saved = _read(Path(path))
    return to_table([utf8_row(row) for row in saved]) if isinstance(saved, list) else saved


def _read(path: Path) -> pa.Table | Rows:
    """A result or part file: JSON lines as rows (without pyarrow), Parquet as a table of ``SCHEMA``;
    a file that is not one (a line that is not a JSON row, a row without ``path`` or ``error``, a file
    that is not Parquet) is an InvalidArgumentError naming it (and the line)."""
    if FORMATS.get(path.suffix.lower()) == "jsonl":
        with path.open(encoding="utf-8", errors="surrogateescape") as lines:
            return [_row(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .schema import SCHEMA
    try:
        return pq.read_table(path, schema=SCHEMA)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise InvalidArgumentError(f"{str(path)!r} is not a Parquet file of classify's rows "
                                   f"({' '.join(str(error).split())})") from None


def _row(path: Path, number: int, line: str) -> dict[str, Any]:
    """Line ``number`` of a JSON-lines result file as a row: an object with a ``path`` and an ``error``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"{str(path)!r} line {number} is not a JSON row ({error.msg} at column "
                                   f"{error.pos + 1})") from None
    if not isinstance(row, dict):
        raise InvalidArgumentError(f"{str(path)!r} line {number} is a JSON {type(row).__name__}, not a row object")
    for name in ("path", "error"):
        if name not in row:
            raise InvalidArgumentError(f"{str(path)!r} line {number} is a row without {name!r}")
    if not isinstance(row["path"], str) or not isinstance(row["error"], (str, type(None))):
        raise InvalidArgumentError(f"{str(path)!r} line {number}: 'path' and 'error' must be strings")
    return row


def _column(table: pa.Table | Rows, name: str) -> list[Any]:
    return [row[name] for row in table] if isinstance(table, list) else table.column(name).to_pylist()


def _select(table: pa.Table | Rows, keep: list[bool]) -> pa.Table | Rows:
    if isinstance(table, list):
        return [row for row, kept in zip(table, keep, strict=True) if kept]
    import pyarrow as pa

    return table.filter(pa.array(keep, pa.bool_()))


def _json_line(row: dict[str, Any]) -> str:
    """A row as one line of JSON: UTF-8 text as is; a text holding surrogate escapes (a file name
    that is not UTF-8, as ``os.fsdecode`` gives it) with every non-ASCII character escaped, which
    ``json.loads`` reads back as the same string (and ``os.fsencode`` turns into the name's bytes)."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row)
    return line + "\n"


class _TableWriter:
    """A context manager giving ``write(table)`` into the binary ``file`` in ``format``, buffering row groups."""

    def __init__(self, file: BinaryIO, format: str) -> None:
        self.format, self.pending, self.rows = format, [], 0
        self.parquet = self.lines = None
        if format == "parquet":
            import pyarrow.parquet as pq

            from .schema import SCHEMA
            self.parquet = pq.ParquetWriter(file, SCHEMA)
        else:
            self.lines = io.TextIOWrapper(file, encoding="utf-8")

    def __enter__(self):
        return self.write

    def write(self, table: pa.Table | Rows) -> None:
        if self.lines is not None:
            rows = table if isinstance(table, list) else table.to_pylist()
            self.lines.writelines(_json_line(row) for row in rows)
            return
        self.pending.append(to_table([utf8_row(row) for row in table]) if isinstance(table, list) else table)
        self.rows += len(table)
        if self.rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            import pyarrow as pa

            self.parquet.write_table(pa.concat_tables(self.pending))
        self.pending, self.rows = [], 0

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self.parquet is not None:
            # closed even when the flush is interrupted (Ctrl-C): else the writer's garbage collection, after
            # its file is gone, printed "Exception ignored ... write to closed file" below "interrupted"
            try:
                if exc_type is None:
                    self._flush()
            finally:
                self.parquet.close()
        else:
            self.lines.flush()
            self.lines.detach()  # the file stays open for publish
