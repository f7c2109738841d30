"""The columns of a classification result: one row per input, predictions or the error that stopped it.

``SCHEMA``, the pyarrow schema of Parquet results and Ray batches, is made at its first use:
JSON-lines results need no pyarrow.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("path", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("class_indices", pa.list_(pa.int64())),
        ("probabilities", pa.list_(pa.float32())),
        ("error", pa.string()),
        ("entrypoint", pa.string()),
        ("weights", pa.string()),
    ])


def __getattr__(name: str) -> Any:  # ``SCHEMA``, made when first asked for
    if name == "SCHEMA":
        return _schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def error_row(path: str, error: str, entrypoint: str, weights: str) -> dict[str, Any]:
    """The row of an input that could not be classified; ``error`` names the cause."""
    return {"path": path, "labels": [], "class_indices": [], "probabilities": [], "error": error,
            "entrypoint": entrypoint, "weights": weights}


def utf8_text(text: str) -> str:
    """``text`` as a column of UTF-8 text (Parquet, Arrow) can hold it: a byte of a file name that is
    not UTF-8 (which Python gives as a surrogate escape, as ``os.fsdecode`` does) becomes ``\\xNN``,
    as Python's ``backslashreplace`` writes it; UTF-8 text stays as it is."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name gives
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def utf8_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every text (and text in a list) as :func:`utf8_text` makes it."""
    return {name: utf8_text(value) if isinstance(value, str)
            else [utf8_text(item) if isinstance(item, str) else item for item in value] if isinstance(value, list)
            else value for name, value in row.items()}


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=_schema())
