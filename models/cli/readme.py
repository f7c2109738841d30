"""``python3 -m models readme``: maintainers regenerate README's entrypoints table from the manifest."""

from __future__ import annotations

import argparse

from ..docs import render_readme
from ..files import write_text_atomically
from ..repository import REPO_ROOT

README = REPO_ROOT / "README.md"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "readme", help="check (or --write) README's entrypoints table against the manifest",
        description="Make README.md's entrypoints table from the manifest in use (weights_manifest.json "
                    "unless CONVNETS_HUB_MANIFEST is set). Without --write, exit 1 if README differs.")
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    text = README.read_text(encoding="utf-8")
    fresh = render_readme(text)
    if fresh == text:
        print(f"{README}: the entrypoints table is up to date")
        return 0
    if args.write:
        write_text_atomically(README, fresh)
        print(f"{README}: the entrypoints table was regenerated")
        return 0
    print(f"{README}: the entrypoints table differs from the manifest; run python3 -m models readme --write")
    return 1
