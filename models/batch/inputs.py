"""The command's INPUTs as image sources: files, directories, globs, path lists, Parquet/CSV columns."""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...processing.fetch import is_url
from ..errors import InvalidArgumentError
from ..wording import count

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
TABLE_EXTENSIONS = frozenset({".parquet", ".pq", ".csv"})


@dataclass(frozen=True)
class Inputs:
    """The image sources that the INPUTs name, and the files of their directories that are no images.

    ``origins`` says where each source read from a list or a table was named, for the messages about
    it: ``notes.txt (a list of inputs), line 1 'hello'``; ``lists`` names the INPUTs read as lists.
    """

    sources: list[str]
    skipped: list[str]
    origins: dict[str, str] = field(default_factory=dict)
    lists: dict[str, int] = field(default_factory=dict)

    def describe(self, source: str) -> str:
        """``source`` as the user named it: its origin in a list or table, else the source itself."""
        return self.origins.get(source, source)


def expand_inputs(inputs: Sequence[str], input_column: str = "path") -> Inputs:
    """Every image source named by ``inputs``, in order, each once (local paths compared by
    :func:`source_key`: ``dir/a.png``, ``../x/dir/a.png`` and ``dir/../dir/a.png`` are one source,
    kept as first spelled).

    A directory gives its image files (recursively, sorted; its other files are ``skipped``); a glob
    its matches; a ``.txt``/``.lst`` file one path or URL per line (blank lines and ``#`` comments
    skipped); a ``.parquet``/``.csv`` file the values of ``input_column`` (relative paths in both are
    relative to the listing file; a list that is not UTF-8 gives its other bytes as surrogate escapes,
    as ``os.fsdecode`` does, so that they name the files whose names they are); a URL or any other
    file itself. A named path that does not exist,
    a directory without image files, or inputs that name no image at all are an InvalidArgumentError;
    a path listed inside a file that does not exist becomes an error row later.
    """
    found = Inputs([], [])
    sources: dict[str, str] = {}  # source_key -> the source as first spelled
    for text in inputs:
        for source in _expand_one(text, input_column, found):
            sources.setdefault(source_key(source), source)
    if not sources:
        raise InvalidArgumentError(f"INPUT {' '.join(inputs)}: names no image to classify")
    found.sources[:] = sources.values()
    return found


def source_key(source: str) -> str:
    """What identifies a source when inputs and rows are compared: a URL as given; a local path
    made absolute (relative to the current directory), with ``~``, ``..`` and links to directories
    resolved, its file name as given (two links to one file stay two sources)."""
    if is_url(source):
        return source
    directory, name = os.path.split(os.path.expanduser(source))
    if name in ("", ".", ".."):
        return os.path.realpath(source)
    return os.path.join(_resolved_directory(os.path.join(os.getcwd(), directory)), name)


@functools.lru_cache(maxsize=4096)
def _resolved_directory(directory: str) -> str:
    """``os.path.realpath`` of an absolute directory, cached: a run's millions of paths share a few."""
    return os.path.realpath(directory)


def _expand_one(text: str, input_column: str, found: Inputs) -> Iterable[str]:
    if is_url(text):
        return [text]
    path = Path(text).expanduser()
    if path.is_dir():
        return _directory_images(text, path, found.skipped)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in LIST_EXTENSIONS:
            listed = _read_list(text, path, found.origins)
            found.lists[text] = len(listed)
            return listed
        if suffix in TABLE_EXTENSIONS:
            return _read_column(text, path, input_column, found.origins)
        return [text]
    if glob.has_magic(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise InvalidArgumentError(f"INPUT {text!r}: the pattern matches no file")
        return [source for match in matches for source in _expand_one(match, input_column, found)]
    raise InvalidArgumentError(f"INPUT {text!r}: no such file, directory or URL")


def _directory_images(text: str, path: Path, skipped: list[str]) -> list[str]:
    """The image files under ``path`` (by their extension); the other files go to ``skipped``."""
    files = [file for file in sorted(path.rglob("*")) if file.is_file()]
    images = [str(file) for file in files if file.suffix.lower() in IMAGE_EXTENSIONS]
    others = [str(file) for file in files if file.suffix.lower() not in IMAGE_EXTENSIONS]
    if not images:
        holds = (f"its {count(len(others), 'file')} ({first_few(others)}) {'is' if len(others) == 1 else 'are'} no "
                 "images") if others else "it is empty"
        raise InvalidArgumentError(f"INPUT {text!r}: no image file ({', '.join(sorted(IMAGE_EXTENSIONS))}) in "
                                   f"the directory: {holds}")
    skipped += others
    return images


def first_few(names: Sequence[str], count: int = 3) -> str:
    """The first ``count`` of ``names``, comma-separated, with ``...`` when there are more."""
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _read_list(text: str, path: Path, origins: dict[str, str]) -> list[str]:
    listed = []
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            listed.append(_beside(path, line))
            origins.setdefault(listed[-1], f"{text} (a list of inputs), line {number} {line!r}")
    return listed


def _read_column(text: str, path: Path, column: str, origins: dict[str, str]) -> list[str]:
    if path.suffix.lower() == ".csv":
        from pyarrow import csv
        table = csv.read_csv(path)
    else:
        import pyarrow.parquet as pq
        table = pq.read_table(path)
    if column not in table.column_names:
        raise InvalidArgumentError(f"INPUT {str(path)!r} has no column {column!r} (--input-column); "
                                   f"its columns: {', '.join(table.column_names)}")
    listed = []
    for number, value in enumerate(table.column(column).to_pylist(), start=1):
        if value is not None and str(value):
            listed.append(_beside(path, str(value)))
            origins.setdefault(listed[-1], f"{text} (column {column!r}), row {number} {str(value)!r}")
    return listed


def _beside(listing: Path, source: str) -> str:
    """A URL or absolute path as is; a relative path relative to the directory of the file listing it."""
    return source if is_url(source) or Path(source).is_absolute() else str(listing.parent / source)
