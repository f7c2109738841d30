"""Inference latency/throughput of our entrypoints against timm's eager peer with the same weights.

Example (CPU, about 6 minutes on 2 cores)::

    python3 benchmarks/bench_inference.py --models nvidia_resneXt --device cpu --batch-sizes 1 8 --json out.json

Rows per model and batch size, all in one process and under ``torch.inference_mode``: the peer
in eager fp32 (timm's ``create_model`` of the same architecture, our state dict copied in; for
entrypoints without a timm twin, GPUNet or NVIDIA's SE-ResNeXt, our own plain eager model),
our eager fp32 model, both in eager bf16 (fp16 on CUDA) channels_last, timm's model under
``torch.compile`` (the strongest peer; in bf16/fp16 channels_last, mode "reduce-overhead", i.e.
CUDA graphs, at batch 1 on a GPU, the default mode otherwise), and ours with ``optimize=True``
(fp32; and bf16/fp16). ``--no-peer-compile`` leaves the compiled peer out. "first call" is the first warm-up call, which includes
torch.compile's compilation for the optimized rows. Every figure is measured twice (two
interleaved passes over the rows, so that load drift on a shared machine hits every row alike)
and both are reported.
``--models nvidia_gpunet:GPUNet-0`` selects a GPUNet type; NVIDIA's published latencies of that
type are quoted under its table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]

TIMM_PEERS = {
    "nvidia_resneXt": "resnext101_32x4d",
    "nvidia_resnext101_32x4d": "resnext101_32x4d",
    "nvidia_resnet50": "resnet50",
    **{f"{arch}_{kind}": arch for kind in ("ssl", "swsl")
       for arch in ("resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d",
                    "resnext101_32x16d")},
    "nvidia_efficientnet_b0": "efficientnet_b0",
    "nvidia_efficientnet_b4": "efficientnet_b4",
}
# Options that make timm's model compute what ours does (NVIDIA's EfficientNets use BatchNorm eps 1e-3).
TIMM_PEER_OPTIONS = {"efficientnet_b0": {"bn_eps": 1e-3}, "efficientnet_b4": {"bn_eps": 1e-3}}


@dataclass
class Row:
    """One configuration's measurements at one batch size (times in ms per batch)."""

    model: str
    label: str
    batch_size: int
    p50_ms: list[float] = field(default_factory=list)
    p90_ms: list[float] = field(default_factory=list)
    peak_memory_mib: float | None = None
    relative_error: float | None = None
    setup_s: float = 0.0
    first_call_s: float = 0.0


class Timer:
    """Times a callable on one device: perf_counter on the CPU, CUDA events on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def once(self, run: Callable[[], object]) -> float:
        if not self.cuda:
            start = time.perf_counter()
            run()
            return (time.perf_counter() - start) * 1e3
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        run()
        end.record()
        torch.cuda.synchronize()
        return begin.elapsed_time(end)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _load_ours(name: str, model_type: str | None, weights: Path, **options: object) -> nn.Module:
    extra = {"model_type": model_type} if model_type else {}
    return torch.hub.load(str(REPO), name, source="local", weights=str(weights), progress=False,
                          **extra, **options)


def _peer(name: str, ours: nn.Module) -> tuple[str, nn.Module]:
    """The eager fp32 reference: timm's model of the same architecture with our weights, else ours."""
    arch = TIMM_PEERS.get(name)
    if arch is None:
        return "ours eager fp32 (peer)", ours
    peer = timm.create_model(arch, pretrained=False, num_classes=ours.pretrained_cfg["num_classes"],
                             **TIMM_PEER_OPTIONS.get(arch, {}))
    peer.load_state_dict(ours.state_dict(), strict=True)
    return f"timm {arch} eager fp32", peer.eval()


class CompiledPeer:
    """timm's model under ``torch.compile``, compiled once per mode: "reduce-overhead" (CUDA graphs)
    for a batch of one on a GPU, the default mode otherwise."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self.compiled: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reduce-overhead" if self.device.type == "cuda" and x.shape[0] == 1 else None
        if mode not in self.compiled:
            self.compiled[mode] = torch.compile(self.model, mode=mode, dynamic=False)
        return self.compiled[mode](x)


def _configurations(name: str, model_type: str | None, device: torch.device, weights: Path,
                    peer_compile: bool = True) -> tuple[list[tuple[str, nn.Module, float]], dict]:
    """(label, model, setup seconds) of every row, and our model's pretrained_cfg."""
    low = "fp16" if device.type == "cuda" else "bf16"
    low_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[low]
    start = time.perf_counter()
    ours = _load_ours(name, model_type, weights, device=str(device)).eval()
    setup = time.perf_counter() - start
    peer_label, peer = _peer(name, ours)
    rows = [(peer_label, peer.to(device), setup)]
    if peer is not ours:
        rows.append(("ours eager fp32", ours, setup))
        peer_low = _peer(name, ours)[1].to(device, low_dtype, memory_format=torch.channels_last)
        peer_low.register_forward_pre_hook(  # the same input cast as our models' hook
            lambda _, args: (args[0].to(low_dtype, memory_format=torch.channels_last),))
        rows.append((f"{peer_label.replace(' fp32', '')} {low} channels_last", peer_low, 0.0))
        if peer_compile:
            compiled_label = peer_label.replace(" eager fp32", f" torch.compile {low} channels_last")
            rows.append((compiled_label, CompiledPeer(peer_low, device), 0.0))
    ours_low = _load_ours(name, model_type, weights, device=str(device), model_math=low).eval()
    rows.append((f"ours eager {low} channels_last", ours_low.to(memory_format=torch.channels_last), 0.0))
    for math in ("fp32", low):
        start = time.perf_counter()
        optimized = _load_ours(name, model_type, weights, device=str(device), model_math=math, optimize=True)
        rows.append((f"ours optimize=True {math}", optimized, time.perf_counter() - start))
    return rows, ours.pretrained_cfg


def bench_model(spec: str, device: torch.device, batch_sizes: list[int], warmup: int, iters: int,
                budget_s: float, peer_compile: bool = True) -> tuple[list[Row], dict]:
    """Every row of one ``name[:model_type]`` at every batch size."""
    name, _, model_type = spec.partition(":")
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.pth"
        _fresh_weights(name, model_type or None, weights)
        configurations, cfg = _configurations(name, model_type or None, device, weights, peer_compile)
    timer = Timer(device)
    rows: list[Row] = []
    with torch.inference_mode():
        for batch in batch_sizes:
            x = torch.randn(batch, *cfg["input_size"], generator=torch.Generator().manual_seed(0)).to(device)
            expected = configurations[0][1](x).float()
            measured = []
            for label, model, setup in configurations:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                warm = [timer.once(lambda model=model, x=x: model(x)) for _ in range(warmup)]
                row = Row(spec, label, batch, setup_s=round(setup, 2), first_call_s=round(warm[0] / 1e3, 2))
                output = model(x).float()
                row.relative_error = float((output - expected).norm() / expected.norm())
                if device.type == "cuda":
                    row.peak_memory_mib = torch.cuda.max_memory_allocated(device) / 2**20
                count = max(3, min(iters, int(budget_s / max(warm[-1], 1e-3) * 1e3)))
                measured.append((row, model, count))
                rows.append(row)
            for _ in range(2):  # two interleaved passes: each figure is measured twice
                for row, model, count in measured:
                    times = [timer.once(lambda model=model, x=x: model(x)) for _ in range(count)]
                    row.p50_ms.append(statistics.median(times))
                    row.p90_ms.append(_percentile(times, 0.9))
    return rows, cfg


def _fresh_weights(name: str, model_type: str | None, path: Path) -> None:
    """Save the randomly initialised weights of ``name`` that every row then loads."""
    extra = {"model_type": model_type} if model_type else {}
    model = torch.hub.load(str(REPO), name, source="local", pretrained=False, **extra)
    torch.save(model.state_dict(), path)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def markdown(rows: list[Row], device_label: str, cfgs: dict[str, dict]) -> str:
    """The table: img/s and p50/p90 of both passes, ratio vs the peer's eager fp32 (first row)."""
    lines = [(f"Device: {device_label}; torch {torch.__version__}, timm {timm.__version__}; "
              "times in ms per batch under torch.inference_mode, pass 1 / pass 2."), ""]
    header = ("| model | batch | configuration | img/s | p50 ms | p90 ms | speed-up vs peer fp32 | rel. error "
              "| first call s |")
    lines += [header, "|" + "---|" * 9]
    base: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        key = (row.model, row.batch_size)
        base.setdefault(key, row.p50_ms)
        ratio = " / ".join(f"{b / p:.2f}x" for b, p in zip(base[key], row.p50_ms, strict=True))
        throughput = " / ".join(f"{row.batch_size / p * 1e3:.1f}" for p in row.p50_ms)
        memory = f" ({row.peak_memory_mib:.0f} MiB peak)" if row.peak_memory_mib is not None else ""
        lines.append(f"| {row.model} | {row.batch_size} | {row.label}{memory} | {throughput} | "
                     + " / ".join(f"{p:.1f}" for p in row.p50_ms) + " | "
                     + " / ".join(f"{p:.1f}" for p in row.p90_ms)
                     + f" | {ratio} | {row.relative_error:.1e} | {row.first_call_s:.1f} |")
    for spec, cfg in cfgs.items():
        published = (cfg.get("metrics") or {}).get("latency_published_ms")
        if published:
            lines.append(f"\nNVIDIA's published latency of {spec} ({published.get('note', '')}): "
                         + "; ".join(f"{gpu} {values[0]} / {values[1]} ms" for gpu, values in published.items()
                                     if gpu != "note"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["nvidia_resneXt"], help="entrypoint[:model_type]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30, help="at most this many timed calls per pass")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds per row and pass, at most")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-peer-compile", action="store_true", help="leave timm under torch.compile out")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows, cfgs = [], {}
    for spec in args.models:
        model_rows, cfgs[spec] = bench_model(spec, device, args.batch_sizes, args.warmup, args.iters, args.budget,
                                             peer_compile=not args.no_peer_compile)
        rows += model_rows
    label = describe_device(device)
    print(markdown(rows, label, cfgs))
    if args.json:
        args.json.write_text(json.dumps({"device": label, "torch": torch.__version__, "argv": sys.argv[1:],
                                         "rows": [asdict(row) for row in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
