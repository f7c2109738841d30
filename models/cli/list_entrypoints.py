"""``python3 -m models list``: every entrypoint with its variants and weights, offline."""

from __future__ import annotations

import argparse

from ..hub import entrypoint_names
from ..registry import ALIASES, DISPATCHERS
from ..weights.manifest import load_manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list the entrypoints and their weights ids",
                                   description="List the entrypoints with the manifest's weights "
                                               "(default first); works offline.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest()
    for name in entrypoint_names():
        if name in ALIASES:
            print(f"{name} (alias of {ALIASES[name]})")
            continue
        if name in DISPATCHERS:
            print(f"{name} (type= gives the model of {', '.join(DISPATCHERS[name].targets)})")
            continue
        entries = sorted((e for e in manifest.entries if e.entrypoint == name), key=lambda e: not e.default)
        print(name)
        for entry in entries:
            variant = f"{entry.model_type}: " if entry.model_type else ""
            default = " (default)" if entry.default or len(entries) == 1 else ""
            print(f"    {variant}{entry.id}{default}")
    return 0
