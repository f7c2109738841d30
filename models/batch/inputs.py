"""The command's INPUTs as image sources: files, directories, globs, path lists, Parquet/CSV columns."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import InvalidArgumentError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
TABLE_EXTENSIONS = frozenset({".parquet", ".pq", ".csv"})


def expand_inputs(inputs: Sequence[str], input_column: str = "path") -> list[str]:
    """Every image source named by ``inputs``, in order, each once.

    A directory gives its image files (recursively, sorted); a glob its matches; a ``.txt``/``.lst``
    file one path or URL per line (blank lines and ``#`` comments skipped); a ``.parquet``/``.csv``
    file the values of ``input_column`` (relative paths in both are relative to the listing file);
    a URL or any other file itself. A named path that does not exist is an InvalidArgumentError;
    a path listed inside a file that does not exist becomes an error row later.
    """
    sources: dict[str, None] = {}
    for text in inputs:
        sources.update(dict.fromkeys(_expand_one(text, input_column)))
    return list(sources)


def _expand_one(text: str, input_column: str) -> Iterable[str]:
    if "://" in text[:16]:
        return [text]
    path = Path(text).expanduser()
    if path.is_dir():
        return [str(file) for file in sorted(path.rglob("*"))
                if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file()]
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in LIST_EXTENSIONS:
            return _read_list(path)
        if suffix in TABLE_EXTENSIONS:
            return _read_column(path, input_column)
        return [text]
    if glob.has_magic(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise InvalidArgumentError(f"INPUT {text!r}: the pattern matches no file")
        return [source for match in matches for source in _expand_one(match, input_column)]
    raise InvalidArgumentError(f"INPUT {text!r}: no such file, directory or URL")


def _read_list(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [_beside(path, line) for line in lines if line and not line.startswith("#")]


def _read_column(path: Path, column: str) -> list[str]:
    if path.suffix.lower() == ".csv":
        from pyarrow import csv
        table = csv.read_csv(path)
    else:
        import pyarrow.parquet as pq
        table = pq.read_table(path)
    if column not in table.column_names:
        raise InvalidArgumentError(f"INPUT {str(path)!r} has no column {column!r} (--input-column); "
                                   f"its columns: {', '.join(table.column_names)}")
    return [_beside(path, str(value)) for value in table.column(column).to_pylist() if value is not None and str(value)]


def _beside(listing: Path, source: str) -> str:
    """A URL or absolute path as is; a relative path relative to the directory of the file listing it."""
    return source if "://" in source[:16] or Path(source).is_absolute() else str(listing.parent / source)
