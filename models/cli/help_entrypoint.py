"""``python3 -m models help ENTRYPOINT``: the docstring torch.hub.help prints, from this checkout."""

from __future__ import annotations

import argparse
import inspect

from ..hub import entrypoint_names, entrypoints
from .arguments import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("help", help="show an entrypoint's documentation",
                                   description="Print an entrypoint's documentation (weights, accuracy, "
                                               "license, arguments), offline.")
    parser.add_argument("entrypoint", metavar="ENTRYPOINT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.entrypoint not in entrypoint_names():
        raise CommandError(f"{args.entrypoint!r} is not an entrypoint; valid: {', '.join(entrypoint_names())}")
    function = entrypoints()[args.entrypoint]
    print(f"{args.entrypoint}{inspect.signature(function)}\n\n{inspect.getdoc(function)}")
    return 0
