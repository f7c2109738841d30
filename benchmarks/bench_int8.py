"""CPU int8 (``model_math="int8"``) against our fp32 and bf16 ``optimize=True`` and timm's compiled models.

Example (CPU; about 15 minutes on 2 idle cores, far longer on a loaded machine)::

    python3 benchmarks/bench_int8.py --models nvidia_resneXt nvidia_resnet50 --batch-sizes 1 8 --torchao

Rows per model and batch size, all in one process, with the same randomly initialised weights:
ours ``optimize=True`` in fp32 (the reference of the ratios) and bf16, timm's model of the same
architecture under ``torch.compile`` in fp32 and bf16 (channels_last), ours ``model_math="int8"``
(ONNX Runtime's static QDQ quantization, calibrated on the bundled photos) and, with ``--torchao``,
torchao's PT2E ``X86InductorQuantizer`` int8 compiled by Inductor with freezing (the other backend
considered; calibrated on the same views). Every figure is measured in two interleaved passes over
the rows (load drift on a shared machine hits every row alike); the table gives both, the CPU's
instructions, and the load average before and after, as the machine may be shared.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from bench_inference import (
    REPO,
    TIMM_PEERS,
    CompiledPeer,
    Row,
    Timer,
    _fresh_weights,
    _load_ours,
    _percentile,
)
from torch import nn

# The package as torch.hub imports it (under a private parent package), found through one of its objects.
_PACKAGE = type(torch.hub.load(str(REPO), "nvidia_convnets_processing_utils", source="local")).__module__.split(".")[0]
calibration_batch = importlib.import_module(f"{_PACKAGE}.models.runtime.int8_calibration").calibration_batch
cpu_instructions = importlib.import_module(f"{_PACKAGE}.models.runtime.cpu_instructions").cpu_instructions


def _timm_peer(name: str, ours: nn.Module, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    peer = timm.create_model(TIMM_PEERS[name], pretrained=False, num_classes=ours.pretrained_cfg["num_classes"])
    peer.load_state_dict(ours.state_dict(), strict=True)
    peer = peer.eval().to(dtype, memory_format=torch.channels_last)
    peer.register_forward_pre_hook(lambda _, args: (args[0].to(dtype, memory_format=torch.channels_last),))
    return CompiledPeer(peer, torch.device("cpu"))


def _torchao_int8(ours: nn.Module, views: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """torchao's PT2E int8 (X86InductorQuantizer's default: per-channel int8 weights, uint8 activations)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torch._inductor import config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    batch = torch.export.Dim("batch", min=1, max=1024)
    exported = torch.export.export(copy.deepcopy(ours).eval(), (views[:2],), dynamic_shapes=({0: batch},)).module()
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    for chunk in views.split(8):
        prepared(chunk)
    compiled = torch.compile(convert_pt2e(prepared))

    def run(x: torch.Tensor) -> torch.Tensor:
        with config.patch(freezing=True):
            return compiled(x)
    return run


def configurations(name: str, weights: Path, use_torchao: bool) -> tuple[list[tuple[str, Callable, float]], dict]:
    rows = []

    def timed(label: str, make: Callable[[], Callable]) -> None:
        start = time.perf_counter()
        rows.append((label, make(), time.perf_counter() - start))

    ours = _load_ours(name, None, weights).eval()
    timed("ours optimize=True fp32", lambda: _load_ours(name, None, weights, optimize=True))
    timed("ours optimize=True bf16", lambda: _load_ours(name, None, weights, optimize=True, model_math="bf16"))
    timed(f"timm {TIMM_PEERS[name]} torch.compile fp32 channels_last", lambda: _timm_peer(name, ours, torch.float32))
    timed(f"timm {TIMM_PEERS[name]} torch.compile bf16 channels_last",
          lambda: _timm_peer(name, ours, torch.bfloat16))
    timed("ours model_math=int8 (ONNX Runtime QDQ)", lambda: _load_ours(name, None, weights, model_math="int8"))
    if use_torchao:
        views = calibration_batch(None, ours.pretrained_cfg)
        timed("torchao PT2E X86InductorQuantizer int8 + Inductor", lambda: _torchao_int8(ours, views))
    return rows, ours.pretrained_cfg


def bench(name: str, batch_sizes: list[int], budget_s: float, use_torchao: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.pth"
        _fresh_weights(name, None, weights)
        rows_made, cfg = configurations(name, weights, use_torchao)
    timer = Timer(torch.device("cpu"))
    rows = []
    with torch.inference_mode():
        for batch in batch_sizes:
            x = torch.randn(batch, *cfg["input_size"], generator=torch.Generator().manual_seed(0))
            expected = rows_made[0][1](x).float()
            measured = []
            for label, model, setup in rows_made:
                warm = [timer.once(lambda model=model, x=x: model(x)) for _ in range(2)]
                row = Row(name, label, batch, setup_s=round(setup, 1), first_call_s=round(warm[0] / 1e3, 1))
                output = model(x).float()
                row.relative_error = float((output - expected).norm() / expected.norm())
                measured.append((row, model, max(3, int(budget_s / max(warm[-1], 1e-3) * 1e3))))
                rows.append(row)
            for _ in range(2):
                for row, model, count in measured:
                    times = [timer.once(lambda model=model, x=x: model(x)) for _ in range(count)]
                    row.p50_ms.append(statistics.median(times))
                    row.p90_ms.append(_percentile(times, 0.9))
    return rows


def markdown(rows: list[Row], loads: dict[str, tuple[str, str]]) -> str:
    lines = [(f"CPU: {cpu_instructions().describe()}; {torch.get_num_threads()} threads; torch {torch.__version__}, "
              f"timm {timm.__version__}; ms per batch (p50), pass 1 / pass 2; ratio = ours fp32 optimize=True "
              "time / the row's time (higher is faster)."), ""]
    lines += [("| model | batch | configuration | p50 ms | vs ours fp32 optimize=True | rel. error vs it "
               "| setup s | first call s |"), "|" + "---|" * 8]
    base: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        base.setdefault((row.model, row.batch_size), row.p50_ms)
        ratio = " / ".join(f"{b / p:.2f}x" for b, p in zip(base[(row.model, row.batch_size)], row.p50_ms,
                                                             strict=True))
        lines.append(f"| {row.model} | {row.batch_size} | {row.label} | "
                     + " / ".join(f"{p:.1f}" for p in row.p50_ms)
                     + f" | {ratio} | {row.relative_error:.1e} | {row.setup_s} | {row.first_call_s} |")
    lines.append("")
    lines += [f"Load average (1, 5, 15 min) while measuring {name}: {before} before, {after} after."
              for name, (before, after) in loads.items()]
    return "\n".join(lines)


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["nvidia_resneXt", "nvidia_resnet50"],
                        choices=sorted(TIMM_PEERS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--budget", type=float, default=4.0, help="seconds per row and pass, at least 3 calls")
    parser.add_argument("--torchao", action="store_true", help="add torchao's PT2E int8 (pip install torchao)")
    args = parser.parse_args(argv)
    rows, loads = [], {}
    for name in args.models:
        before = _load()
        rows += bench(name, args.batch_sizes, args.budget, args.torchao)
        loads[name] = (before, _load())
        print(markdown(rows, loads), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
