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

from ...processing.errors import MismatchedTorchvisionError
from ..errors import WeightsError
from ..release import version_line
from .arguments import (
    CommandError,
    OneLineErrorParser,
    WholeWordsHelpFormatter,
    in_flag_terms,
)
from .console_output import OPTIMIZE_NOTICE, command_output
from .early_checks import check_arguments, unknown_command, unknown_options

COMMAND_MODULES = ("list_entrypoints", "help_entrypoint", "pin_weights", "smoke", "export", "serve",
                   "classify", "finetune", "validate", "save_pretrained", "push_to_hub", "readme")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python3 -m models", formatter_class=WholeWordsHelpFormatter,
                                description="The command line of convnets-hub: one front door for every job.")
    parser.add_argument("--version", action=_VersionAction, help="print the versions of convnets-hub, torch, "
                        "torchvision and timm, and the folder it runs from, and exit")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="<command>",
                                       parser_class=OneLineErrorParser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for command_parser in subparsers.choices.values():
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (2: bad arguments, 130: interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    commands = _subparsers(parser).choices
    mistake = unknown_command(argv, commands)  # argparse lists the choices, with no suggestion
    if mistake:
        parser.error(mistake)
    command = next((word for word in argv if not word.startswith("-")), None)
    mistake = unknown_options(argv[argv.index(command) + 1:], commands[command]) if command else None
    if mistake:
        commands[command].error(mistake)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own parser says so, pointing to the command's --help
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        check_arguments(args)  # names, devices and paths: before the command imports torch
        if getattr(args, "optimize", False):
            print(OPTIMIZE_NOTICE, file=sys.stderr)
        with command_output(f"python3 -m models {args.command}"):
            return args.run(args)
    except CommandError as error:
        return _fail(args, error, error.exit_code)
    except ValueError as error:  # the library's InvalidArgumentError and its kin: bad input
        return _fail(args, error, 2)
    except MismatchedTorchvisionError as error:  # the installation, not the arguments
        return _fail(args, error, 1)
    except WeightsError as error:
        return _fail(args, error, 1)
    except BrokenPipeError:  # the reader went away (python3 -m models list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except KeyboardInterrupt:
        print(f"python3 -m models {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, error: Exception, exit_code: int) -> int:
    """One line on stderr, the library's parameters named as the command's flags."""
    print(f"python3 -m models {args.command}: error: {in_flag_terms(str(error), args.command_parser)}", file=sys.stderr)
    return exit_code


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))


class _VersionAction(argparse.Action):
    """``--version``: the line of :func:`version_line`, computed only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_line())
        parser.exit()
