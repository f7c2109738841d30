"""Arguments shared by the commands, one meaning everywhere, and the one-line error style."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from typing import NoReturn


class CommandError(Exception):
    """A command cannot go on: one line on stderr and ``exit_code`` (2: the user's input is wrong)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def in_flag_terms(message: str, parser: argparse.ArgumentParser) -> str:
    """The library's ``message``, which names its parameters (``batch_size=0``, ``resume=True``), in the
    command's terms: each parameter that is an option of ``parser`` named as its flag (``--batch-size 0``,
    ``--resume``)."""
    for action in parser._actions:
        flag = next((option for option in action.option_strings if option.startswith("--")), None)
        if flag is None or action.dest == "help":
            continue
        parameter = rf"(?<![\w-]){re.escape(action.dest)}="
        if action.const is True:  # a switch: "resume=True" is the flag itself
            message = re.sub(parameter + r"True\b", flag, message)
        message = re.sub(parameter, flag + " ", message)
    return message


class WholeWordsHelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, but lines never break inside a hyphenated word ("JSON-lines", "hf-hub:")."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1 (counts, sizes, batch sizes)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 0 (worker counts, where 0 means none)."""
    return _whole_number(text, 0)


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, *, optimize: bool = True, model_math: bool = True) -> None:
    """``--entrypoint``, ``--model-type``, ``--weights``/``--no-pretrained``, ``--device`` (and
    ``--model-math``, ``--optimize``): the keyword arguments of every hub entrypoint."""
    group = parser.add_argument_group("model")
    group.add_argument("--entrypoint", required=True, metavar="E",
                       help="a model entrypoint of hubconf.py (python3 -m models list shows them)")
    group.add_argument("--model-type", metavar="T", help="the variant of entrypoints that serve several "
                       "(nvidia_gpunet: GPUNet-0 ... GPUNet-D2)")
    weights = group.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="ID|PATH|URL",
                         help="a weights id of the manifest, a checkpoint file (.pth, .safetensors...), a model "
                              "folder of save-pretrained, an http(s) URL or hf-hub:org/name "
                              "(default: the entrypoint's default weights)")
    weights.add_argument("--no-pretrained", action="store_true", help="randomly initialised weights")
    group.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    if model_math:
        group.add_argument("--model-math", default="fp32", metavar="fp32|fp16|bf16|fp64|int8",
                           help="the model's precision (default fp32); int8: quantized for the CPU (ONNX Runtime)")
        group.add_argument("--calibration", metavar="DIR",
                           help="with --model-math int8: images (searched recursively) to calibrate the "
                                "quantization on (default: the photos that matplotlib and scikit-image ship)")
    if optimize:
        group.add_argument("--optimize", action="store_true",
                           help="BatchNorm folding, channels_last and torch.compile (inference only)")
