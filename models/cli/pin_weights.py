"""``python3 -m models pin-weights [ids...]``: maintainers pin files' sha256 and size into the manifest."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pin-weights", help="download manifest entries and pin their sha256 and size",
        description="Fetch entries through the normal resolver (cache, CONVNETS_HUB_MIRROR, then the URLs; "
                    "a hash prefix is checked first) and write their sha256 and size into the manifest in use.")
    parser.add_argument("ids", nargs="*", help="manifest ids to pin (default: every entry without a sha256)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..weights.pin import pin

    for entry in pin(args.ids):
        print(f"{entry.id}: sha256 {entry.sha256}, {entry.size} bytes")
    return 0
