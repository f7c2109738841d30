"""``python3 -m models <command>``: the command line of convnets-hub, one front door for every job.

Each command lives in its own module of this package, which defines ``register(subparsers)``
(adding its parser, with ``run=<function(args) -> int>`` as a default) and nothing the others need.
``register`` imports nothing heavy (torch, timm, pyarrow...): ``run`` does, so that ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import WeightsError
from .arguments import CommandError, OneLineErrorParser, WholeWordsHelpFormatter

COMMAND_MODULES = ("list_entrypoints", "help_entrypoint", "pin_weights", "smoke", "export", "serve",
                   "classify", "finetune", "validate", "save_pretrained", "push_to_hub", "readme")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python3 -m models", formatter_class=WholeWordsHelpFormatter,
                                description="The command line of convnets-hub: one front door for every job.")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="<command>",
                                       parser_class=OneLineErrorParser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for command_parser in subparsers.choices.values():
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (2: bad arguments, 130: interrupted)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own parser says so, pointing to the command's --help
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except CommandError as error:
        return _fail(args.command, error, error.exit_code)
    except ValueError as error:  # the library's InvalidArgumentError and its kin: bad input
        return _fail(args.command, error, 2)
    except WeightsError as error:
        return _fail(args.command, error, 1)
    except BrokenPipeError:  # the reader went away (python3 -m models list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except KeyboardInterrupt:
        print(f"python3 -m models {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(command: str, error: Exception, exit_code: int) -> int:
    print(f"python3 -m models {command}: error: {error}", file=sys.stderr)
    return exit_code
