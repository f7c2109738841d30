"""NVIDIA's quantized EfficientNet-B0 on the CPU: fp32 fake quantization and int8 ONNX Runtime beside the plain B0.

Example (CPU, a few minutes on 2 cores)::

    python3 benchmarks/bench_quant_efficientnet.py --batch-sizes 1 8 --json out.json

Rows, all in one process and under ``torch.inference_mode``, two interleaved passes (load drift on a shared
machine hits every row alike): the plain ``nvidia_efficientnet_b0`` in eager fp32 (the reference of the
ratios) and in ONNX Runtime fp32; ``nvidia_efficientnet_quant_b0`` in eager fp32 (fake quantization, what
NVIDIA's pytorch_quantization runs) and its QuantizeLinear/DequantizeLinear export in ONNX Runtime (CPU
provider, all graph optimizations). Weights are random; the quantized model's amax values come from a max
calibration on one random batch. The CPU's instruction-set flags that matter to int8 and bf16 are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

REPO = Path(__file__).resolve().parents[1]
FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
         "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16"}


def cpu_flags() -> str:
    """The instruction-set flags of /proc/cpuinfo that int8 and bf16 kernels use, and the model name."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    flags = set(next(line for line in text.splitlines() if line.startswith("flags")).split(":")[1].split())
    name = next((line.split(":")[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    return f"{name}: " + ", ".join(label for flag, label in FLAGS.items() if flag in flags)


def calibrate(model: torch.nn.Module, batch: torch.Tensor) -> None:
    """Set every quantizer's amax to the largest magnitude it sees on ``batch`` (a max calibration)."""
    from convnets_hub.models.archs.fake_quantization import TensorQuantizer

    seen: dict[TensorQuantizer, torch.Tensor] = {}

    def record(module: TensorQuantizer, args: tuple[torch.Tensor]) -> None:
        seen[module] = module.amax_for(args[0])

    hooks = [module.register_forward_pre_hook(record)
             for module in model.modules() if isinstance(module, TensorQuantizer)]
    with torch.inference_mode():
        model(batch)
    for hook in hooks:
        hook.remove()
    for module, amax in seen.items():
        module.set_amax(amax)


def timed(run: Callable[[torch.Tensor], object], x: torch.Tensor, calls: int) -> list[float]:
    for _ in range(3):
        run(x)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--calls", type=int, default=20, help="timed calls per row and pass")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    plain = torch.hub.load(str(REPO), "nvidia_efficientnet_b0", source="local", pretrained=False).eval()
    quant = torch.hub.load(str(REPO), "nvidia_efficientnet_quant_b0", source="local", pretrained=False).eval()
    from convnets_hub.models.deploy.exporters import (
        export_model,  # the package torch.hub.load registered
    )

    quant.load_state_dict(plain.state_dict(), strict=False)  # the same weights; amax from calibration
    calibrate(quant, torch.randn(8, 3, 224, 224))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in (("plain", plain), ("quant", quant)):
            path = export_model(model, Path(folder) / f"{name}.onnx", "onnx")
            sessions[name] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = {"EfficientNet-B0 eager fp32": lambda x: plain(x),
            "EfficientNet-B0 ONNX Runtime fp32": lambda x: sessions["plain"].run(None, {"input": x.numpy()}),
            "quant-B0 eager fp32 fake quantization": lambda x: quant(x),
            "quant-B0 ONNX Runtime int8 (Q/DQ)": lambda x: sessions["quant"].run(None, {"input": x.numpy()})}
    results: dict[str, dict[int, list[float]]] = {label: {} for label in rows}
    print(f"CPU: {cpu_flags()}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| batch | configuration | p50 ms (pass 1 / 2) | img/s | speed-up vs B0 eager fp32 |")
    print("|---|---|---|---|---|", flush=True)
    with torch.inference_mode():
        for batch in args.batch_sizes:
            x = torch.randn(batch, 3, 224, 224)
            for _ in range(2):  # interleaved passes
                for label, run in rows.items():
                    results[label].setdefault(batch, []).append(statistics.median(timed(run, x, args.calls)))
            reference = results["EfficientNet-B0 eager fp32"][batch]
            for label in rows:
                p50 = results[label][batch]
                ratios = " / ".join(f"{r / t:.2f}x" for r, t in zip(reference, p50, strict=True))
                print(f"| {batch} | {label} | {' / '.join(f'{t:.1f}' for t in p50)} | "
                      f"{batch * 1e3 / np.mean(p50):.1f} | {ratios} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_flags(), "p50_ms": results}, indent=1))


if __name__ == "__main__":
    main()
