"""The columns of a classification result: one row per input, predictions or the error that stopped it."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCHEMA = pa.schema([
    ("path", pa.string()),
    ("labels", pa.list_(pa.string())),
    ("class_indices", pa.list_(pa.int64())),
    ("probabilities", pa.list_(pa.float32())),
    ("error", pa.string()),
    ("entrypoint", pa.string()),
    ("weights", pa.string()),
])


def error_row(path: str, error: str, entrypoint: str, weights: str) -> dict[str, Any]:
    """The row of an input that could not be classified; ``error`` names the cause."""
    return {"path": path, "labels": [], "class_indices": [], "probabilities": [], "error": error,
            "entrypoint": entrypoint, "weights": weights}


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)
