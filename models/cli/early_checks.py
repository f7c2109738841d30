"""The command line's mistakes found at once: names, devices and paths checked before torch is imported.

Misspelled commands, flags, entrypoints, variants and weights ids get a "did you mean" (difflib);
a CUDA device on a machine without one and a missing data folder are refused in well under a second,
instead of after torch, timm and the model have been loaded. Nothing here imports torch: the
library checks the same things again, exactly, when the command runs.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from importlib.util import find_spec
from pathlib import Path

from ..errors import InvalidArgumentError
from ..hub import entrypoint_names, model_entrypoint_names
from ..registry import ALIASES, DISPATCHERS, SPECS
from .arguments import CommandError


def close_matches(word: str, candidates: Iterable[str]) -> list[str]:
    """At most three of ``candidates`` close to ``word`` (difflib's ratio), a case-insensitive match first."""
    candidates = list(dict.fromkeys(candidates))
    folded = {candidate.casefold(): candidate for candidate in candidates}
    matches = [folded[word.casefold()]] if word.casefold() in folded else []
    matches += [match for match in difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
                if match not in matches]
    return matches[:3]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``) for the candidates close to ``word``, else ``""``."""
    return f"; did you mean {_either(repr(match) for match in close_matches(word, candidates))}?" \
        if close_matches(word, candidates) else ""


def _either(words: Iterable[str]) -> str:
    words = list(words)
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def unknown_command(argv: Sequence[str], commands: Iterable[str]) -> str | None:
    """The error for ``argv``'s command when it is not one of ``commands`` (None when it is, or is absent)."""
    command = next((word for word in argv if not word.startswith("-")), None)
    if command is None or command in commands:
        return None
    return f"{command!r} is not a command{did_you_mean(command, commands)}"


def unknown_options(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The error for the long options of ``argv`` that ``parser`` does not know (argparse's unique
    prefixes are known), each with a "did you mean"; None when every one is known."""
    known = [option for action in parser._actions for option in action.option_strings if option.startswith("--")]
    problems = []
    for word in argv:
        if word == "--":
            break
        option = word.split("=", 1)[0]
        if not option.startswith("--") or any(name.startswith(option) for name in known):
            continue
        matches = close_matches(option.replace("_", "-"), known) or close_matches(option, known)
        problems.append(f"{option} (did you mean {_either(matches)}?)" if matches else option)
    if not problems:
        return None
    return f"unrecognized arguments: {', '.join(problems)}"


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse, with one line, the names, devices and paths of the parsed ``args`` that cannot work."""
    if args.command == "help":
        check_entrypoint(args.entrypoint, entrypoint_names(), "ENTRYPOINT", "is not an entrypoint")
        return
    if args.command == "smoke":
        if args.repo is None:
            for name in args.entrypoint or []:
                check_entrypoint(name, model_entrypoint_names(), "--entrypoint", "is not a model entrypoint")
    elif isinstance(getattr(args, "entrypoint", None), str):
        check_entrypoint(args.entrypoint, model_entrypoint_names(), "--entrypoint", "is not a model entrypoint")
        model_type = _checked_model_type(args.entrypoint, args.model_type)
        if getattr(args, "weights", None):
            check_weights(args.weights, args.entrypoint, model_type)
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    if isinstance(getattr(args, "data", None), str) and not Path(args.data).expanduser().is_dir():
        problem = "is a file, not a directory" if Path(args.data).expanduser().exists() else "no such directory"
        raise CommandError(f"--data {args.data}: {problem}")


def check_entrypoint(name: str, valid: list[str], flag: str, problem: str) -> None:
    if name not in valid:
        raise CommandError(f"{flag} {name!r} {problem}{did_you_mean(name, valid)} "
                           f"(valid: {', '.join(valid)})")


def _checked_model_type(entrypoint: str, model_type: str | None) -> str | None:
    """The canonical variant of ``--model-type`` (None for entrypoints without variants, or none given)."""
    if model_type is None:
        return None
    spec = SPECS.get(ALIASES.get(entrypoint, entrypoint))
    try:
        if entrypoint in DISPATCHERS:
            DISPATCHERS[entrypoint].target(model_type)
            return None
        if spec is None or spec.canonical_type is None:
            raise CommandError(f"--model-type {model_type!r}: {entrypoint} has no variants")
        return spec.canonical_type(model_type)
    except InvalidArgumentError as error:
        valid = list(DISPATCHERS[entrypoint].types) if entrypoint in DISPATCHERS else _variants(entrypoint)
        cause = re.sub(r"^(model_)?type=", "", str(error))
        raise CommandError(f"--model-type {cause}{did_you_mean(model_type, valid)}") from None


def _variants(entrypoint: str) -> list[str]:
    from ..weights.manifest import load_manifest

    return [entry.model_type for entry in load_manifest().entries
            if entry.entrypoint == ALIASES.get(entrypoint, entrypoint) and entry.model_type]


def check_weights(weights: str, entrypoint: str, model_type: str | None) -> None:
    """``--weights``: a manifest id of the entrypoint, an existing file or a URL; else a "did you mean"."""
    from ..weights.manifest import HF_PREFIX, load_manifest

    if "://" in weights or weights.startswith(HF_PREFIX) or Path(weights).expanduser().exists():
        return  # a URL, a Hugging Face Hub id, a file or a model folder: the library reads it
    manifest = load_manifest()
    name = ALIASES.get(entrypoint, entrypoint)
    if entrypoint in DISPATCHERS:
        return  # the variant picks the entrypoint whose ids apply: the library checks them
    try:
        manifest.get(weights, name, model_type)
    except InvalidArgumentError as error:
        valid = [entry.id for entry in manifest.for_entrypoint(name, model_type)]
        if not close_matches(weights, valid) and (os.sep in weights or Path(weights).suffix in CHECKPOINT_SUFFIXES):
            raise CommandError(f"--weights {weights}: no such file (nor a weights id of {entrypoint})") from None
        raise CommandError(f"--{str(error).replace('=', ' ', 1)}{did_you_mean(weights, valid)}") from None


CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".bin", ".ckpt", ".safetensors", ".pkl")
"""What a checkpoint file's name usually ends with: such a ``--weights`` is a path, not an id."""
_DEVICE = re.compile(r"^(cpu|cuda)(:\d+)?$")


def check_device(device: str) -> None:
    """``--device``: cpu, cuda or cuda:N, and a CUDA one only where a CUDA build of torch and a GPU driver are."""
    if not _DEVICE.match(device):
        raise CommandError(f"--device {device!r} is not a device: cpu, cuda or cuda:N"
                           f"{did_you_mean(device, ['cpu', 'cuda'])}")
    if device.startswith("cuda"):
        missing = _missing_cuda()
        if missing:
            raise CommandError(f"--device {device}: CUDA is not available on this machine ({missing})")


def _missing_cuda() -> str | None:
    """Why CUDA surely cannot work here, read without importing torch (None when it may)."""
    spec = find_spec("torch")
    version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py" if spec else None
    if version_file is None or not version_file.is_file():
        return None
    text = version_file.read_text(encoding="utf-8", errors="replace")
    builds = {key: re.search(rf"^{key}\s*(?::[^=]*)?=\s*(None|'[^']*'|\"[^\"]*\")", text, re.MULTILINE)
              for key in ("cuda", "hip")}
    if not any(match and match.group(1) != "None" for match in builds.values()):
        version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.MULTILINE)
        return f"torch {version.group(1) if version else ''}".strip() + " is a CPU-only build"
    if builds["hip"] and builds["hip"].group(1) != "None":
        return None  # ROCm: leave it to torch
    if sys.platform == "linux" and not (Path("/proc/driver/nvidia").exists() or Path("/dev/dxg").exists()
                                        or any(Path("/dev").glob("nvidia[0-9]*"))):
        return "no NVIDIA GPU driver found: no GPU, or its driver is not loaded"
    return None
