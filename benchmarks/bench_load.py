"""Loading a complete checkpoint from a local file: ours (``weights=path``) against timm's
``create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=path))``, in one process.

For each model, timm's model of the same architecture (randomly initialised) is saved once to a
temporary file, which both load; ours loads it twice: as it does (a build on the meta device,
materialised uninitialised, then the checkpoint: no random initialisation to overwrite) and as it did
before (built and randomly initialised, then the checkpoint), the latter by forcing the builder's
completeness check to fail. That adds to "before" a build on the meta device (the "meta build" column
gives its cost). Rows are timed in interleaved rounds (load drift on a shared machine hits every row
alike) after one untimed round; the table gives medians of wall and CPU (process) time, their ratios
to timm's, the CPU's instructions, and the load average before and after. Every load is checked to
give timm's tensors.

    python3 benchmarks/bench_load.py [--models resnext101_32x8d_ssl:resnext101_32x8d resnet50:resnet50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
# The package as torch.hub imports it (under a private parent package), found through one of its objects.
_PACKAGE = type(torch.hub.load(str(REPO), "nvidia_convnets_processing_utils", source="local")).__module__.split(".")[0]
builder = importlib.import_module(f"{_PACKAGE}.models.builder")
cpu_instructions = importlib.import_module(f"{_PACKAGE}.models.runtime.cpu_instructions").cpu_instructions


def timed(load: Callable[[], nn.Module]) -> tuple[float, float, nn.Module]:
    """Wall and CPU seconds of ``load()``, and its model."""
    wall, cpu = time.perf_counter(), time.process_time()
    model = load()
    return time.perf_counter() - wall, time.process_time() - cpu, model


def ours_before(entrypoint: str, path: Path) -> nn.Module:
    """Our load as it was before: built and randomly initialised, then loaded (the completeness check fails)."""
    fills = builder._LoadPlan.fills
    builder._LoadPlan.fills = lambda self, model: False
    try:
        return torch.hub.load(str(REPO), entrypoint, source="local", weights=str(path))
    finally:
        builder._LoadPlan.fills = fills


def meta_build(entrypoint: str) -> nn.Module:
    with torch.device("meta"):
        return torch.hub.load(str(REPO), entrypoint, source="local", pretrained=False)


def table_row(entrypoint: str, timm_name: str, folder: Path, rounds: int) -> str:
    """The table's row of one model: its checkpoint written to ``folder``, loaded ``rounds`` times each way."""
    path = folder / f"{timm_name}.pth"
    reference = timm.create_model(timm_name).state_dict()
    torch.save(reference, path)
    loads = {"timm": lambda: timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}),
             "before": lambda: ours_before(entrypoint, path),
             "ours": lambda: torch.hub.load(str(REPO), entrypoint, source="local", weights=str(path)),
             "meta": lambda: meta_build(entrypoint)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in loads}
    for round_ in range(rounds + 1):
        for name, load in loads.items():
            wall, cpu, model = timed(load)
            if name != "meta":
                state = model.state_dict()
                assert all(torch.equal(state[key], value) for key, value in reference.items()), (name, entrypoint)
            if round_:
                times[name].append((wall, cpu))
    path.unlink()
    wall = {name: statistics.median(t[0] for t in values) for name, values in times.items()}
    cpu = {name: statistics.median(t[1] for t in values) for name, values in times.items()}
    params = sum(value.numel() for value in reference.values() if value.is_floating_point()) / 1e6
    return (f"| {entrypoint} | {timm_name} | {params:.1f} | {wall['timm']:.2f} / {cpu['timm']:.2f} "
            f"| {wall['before']:.2f} / {cpu['before']:.2f} | {wall['ours']:.2f} / {cpu['ours']:.2f} | {cpu['meta']:.2f} "
            f"| {cpu['before'] / cpu['timm']:.2f}x | {cpu['ours'] / cpu['timm']:.2f}x | {cpu['ours'] / cpu['before']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnext101_32x8d_ssl:resnext101_32x8d", "resnet50:resnet50"],
                        help="entrypoint:timm_name pairs")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {cpu_instructions()}; torch {torch.__version__}, timm {timm.__version__}, "
          f"{torch.get_num_threads()} threads; load average before {os.getloadavg()[0]:.2f}")
    print("| ours | timm | params (M) | timm wall / cpu s | ours before wall / cpu s | ours wall / cpu s "
          "| meta build cpu s | before / timm (cpu) | ours / timm (cpu) | ours / before (cpu) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for pair in args.models:
            entrypoint, timm_name = pair.split(":")
            print(table_row(entrypoint, timm_name, Path(folder), args.rounds), flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}; {args.rounds} interleaved rounds after one untimed")


if __name__ == "__main__":
    main()
