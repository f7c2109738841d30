"""The GPU tables of issue 20 in one run: our models against timm (eager and torch.compile), and classify.

Every job is its own process. All build, compile and warm up at once (compilation is CPU work),
wait at a barrier until all are ready (or ``--barrier-s`` has passed), then take turns on the GPU
under a file lock, so that no timed section overlaps another job's work. Jobs:

* ``<family>_bs<batch>_<who>``: ResNeXt101-32x4d (batch 256 and 1), EfficientNet-B0 (256) and
  GPUNet-0 (1 and 256, ours only) in fp16 channels_last: timm eager and timm ``torch.compile``
  ("reduce-overhead" at batch 1), or ours eager and ``optimize=True``. Batch 1: latency per call
  (p50 of ``--calls`` synchronized calls); otherwise images/s (median of 5 timed runs);
* ``classify``: ``benchmarks/bench_classify.py``'s rows (each decoder alone, GPU decoding with each
  JPEG library, the model alone, the local engine end to end with GPU, hybrid and CPU decoding) for
  resnet50 ``optimize=True`` fp16, batch 128, on 8,192 JPEGs of 1280-2048 px.

Writes ``table.md`` and ``results.json`` to ``--out``; each job's log stays in ``--scratch``
(``logs.txt`` in ``--out`` keeps their tails).

    python3 benchmarks/gpu/bench_gpu.py --out DIR [--device cuda] [--jobs NAME...]
    python3 benchmarks/gpu/bench_gpu.py --out /tmp/trial --device cpu --batch 2 --scale 0.02  # a CPU trial
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# name: (family, who, batch)
JOBS = {
    "rx101_bs256_timm": ("rx101", "timm", 256),
    "rx101_bs256_ours": ("rx101", "ours", 256),
    "rx101_bs1_timm": ("rx101", "timm", 1),
    "rx101_bs1_ours": ("rx101", "ours", 1),
    "effb0_bs256_timm": ("effb0", "timm", 256),
    "effb0_bs256_ours": ("effb0", "ours", 256),
    "gpunet0_bs1_ours": ("gpunet0", "ours", 1),
    "gpunet0_bs256_ours": ("gpunet0", "ours", 256),
    "classify": ("classify", "ours", 128),
}
ENTRYPOINTS = {"rx101": ("nvidia_resneXt", {}), "effb0": ("nvidia_efficientnet_b0", {}),
               "gpunet0": ("nvidia_gpunet", {"model_type": "GPUNet-0"})}


def benchmarks_module(name: str):
    """A module of benchmarks/ (bench_inference, bench_classify), imported from the checkout, whose
    ``models`` package is mounted too."""
    sys.path[:0] = [str(HERE.parent), str(REPO)]
    importlib.import_module("models")
    return importlib.import_module(name)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(model, x, calls: int, repeats: int = 5) -> dict:
    rates = []
    for _ in range(repeats):
        synchronize(x.device)
        started = time.perf_counter()
        for _ in range(calls):
            model(x)
        synchronize(x.device)
        rates.append(calls * x.shape[0] / (time.perf_counter() - started))
    return {"img_per_s": statistics.median(rates), "max": max(rates), "all": rates}


def latency(model, x, calls: int) -> dict:
    times = []
    for _ in range(calls):
        synchronize(x.device)
        started = time.perf_counter()
        model(x)
        synchronize(x.device)
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    return {"p50_ms": statistics.median(times), "p10_ms": times[len(times) // 10],
            "p90_ms": times[9 * len(times) // 10]}


def model_job(name: str, args: argparse.Namespace) -> tuple[dict, Callable[[], None]]:
    """Build and warm up the job's rows; returns the result so far and the timed step."""
    import torch

    inference = benchmarks_module("bench_inference")
    from convnets_hub.models.hub import entrypoint

    family, who, batch = JOBS[name]
    batch = args.batch if args.batch and batch > 1 else batch
    device = torch.device(args.device)
    low = torch.float16 if device.type == "cuda" else torch.float32
    math = "fp16" if device.type == "cuda" else "fp32"
    entry, options = ENTRYPOINTS[family]
    torch.manual_seed(0)
    ours = entrypoint(entry)(pretrained=False, **options).eval()
    size = ours.pretrained_cfg["input_size"][-1]
    x = torch.randn(batch, 3, size, size, device=device).to(low, memory_format=torch.channels_last)
    rows = {}
    if who == "timm":
        import timm

        arch = inference.TIMM_PEERS[entry]
        peer = timm.create_model(arch, pretrained=False, **inference.TIMM_PEER_OPTIONS.get(arch, {}))
        peer = peer.eval().to(device, low, memory_format=torch.channels_last)
        rows[f"timm {arch} eager {math} CL"] = peer
        rows[f"timm {arch} torch.compile {math} CL"] = inference.CompiledPeer(peer, device)
    else:
        rows[f"ours eager {math} CL"] = ours.to(device, low, memory_format=torch.channels_last)
        rows[f"ours optimize=True {math}"] = entrypoint(entry)(pretrained=False, model_math=math, device=device,
                                                              optimize=True, **options)
    result = {"job": name, "batch": batch, "device": str(device), "rows": {}, "first_calls_s": {}}
    with torch.inference_mode():
        for label, model in rows.items():
            started = time.perf_counter()
            for _ in range(3):
                model(x)
            synchronize(device)
            result["first_calls_s"][label] = round(time.perf_counter() - started, 2)

    def timed() -> None:
        with torch.inference_mode():
            for label, model in rows.items():
                result["rows"][label] = (latency(model, x, max(20, int(args.calls * args.scale))) if batch == 1
                                         else throughput(model, x, max(2, int(20 * args.scale))))
        if device.type == "cuda":
            result["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20

    return result, timed


def classify_job(name: str, args: argparse.Namespace) -> tuple[dict, Callable[[], None]]:
    import tempfile

    import torch

    classify = benchmarks_module("bench_classify")
    cuda = args.device.startswith("cuda")
    cores = os.cpu_count() or 1
    options = classify.parser().parse_args([
        "--device", args.device, "--model-math", "fp16" if cuda else "fp32",
        "--batch-size", str(args.batch or JOBS[name][2]), "--workers", str(cores),
        "--cpu-workers", *sorted({str(1), str(max(1, cores // 4)), str(cores)}, key=int),
        "--gpu-batch-sizes", *([str(size) for size in (64, 128, 256)] if cuda else [str(args.batch or 2)]),
        "--jpeg-backends", *classify.BACKENDS,
        "--engine-decodes", "gpu", "hybrid", "cpu", "--seconds", str(2.0 if cuda else max(0.5, 2.0 * args.scale))])
    directory = Path(tempfile.mkdtemp(prefix="classify-", dir=args.scratch))
    images = 8192 if cuda else 8  # issue 29: 8,192 JPEGs of 1280-2048 px (3 GB, written on all cores)
    sources = classify.make_jpegs(directory, images, images if cuda else 32 * images)
    predictor = classify.build_predictor(options)
    started = time.perf_counter()
    warm = [classify.CpuDecoder(predictor.preprocess).load(source) for source in sources[:options.batch_size]]
    predictor.predict(sources[:len(warm)], torch.stack(warm))  # compiles
    gpu = classify.GpuJpegDecoder(predictor.preprocess, args.device)
    gpu.finish(gpu.decode([gpu.read(source) for source in sources[:8]]))  # nvJPEG's start
    synchronize(torch.device(args.device))
    result = {"job": name, "batch": options.batch_size, "paths": len(sources), "files": images,
              "first_call_s": round(time.perf_counter() - started, 2), "rows": {}}

    def timed() -> None:
        rows = classify.measure(options, predictor, sources, directory)
        result["rows"] = {row: {"images": count, "seconds": seconds, "img_per_s": count / seconds if seconds else 0}
                          for row, (count, seconds) in rows.rows.items()}
        result["notes"] = rows.notes  # the default JPEG library, and those that could not decode

    return result, timed


def worker(name: str, args: argparse.Namespace) -> None:
    scratch = Path(args.scratch)
    try:
        result, timed = (classify_job if name == "classify" else model_job)(name, args)
    except Exception:  # reported in the table; the barrier must not wait for this job
        (scratch / f"failed.{name}").touch()
        raise
    (scratch / f"ready.{name}").touch()
    started = float((scratch / "started").read_text())
    result["ready_s"] = round(time.time() - started, 1)  # a turn that began before another job's ready_s overlapped
    deadline = float((scratch / "deadline").read_text())
    jobs = int((scratch / "jobs").read_text())
    while time.time() < deadline and len(list(scratch.glob("ready.*"))) + len(list(scratch.glob("failed.*"))) < jobs:
        time.sleep(0.5)  # the barrier: every job compiled (or failed) or the deadline passed
    with open(scratch / "gpu.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one job at a time on the GPU
        result["turn_began_s"] = round(time.time() - started, 1)
        timed()
        fcntl.flock(lock, fcntl.LOCK_UN)
    (scratch / f"result.{name}.json").write_text(json.dumps(result, indent=1))


def table(results: list[dict]) -> str:
    lines = ["| job | row | figure |", "|---|---|---|"]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['job']} | ERROR | {result['error'].strip().splitlines()[-1][:200]} |")
            continue
        for label, row in result["rows"].items():
            if "p50_ms" in row:
                figure = f"p50 {row['p50_ms']:.3f} ms (p10 {row['p10_ms']:.3f}, p90 {row['p90_ms']:.3f})"
            elif "images" in row:
                figure = f"{row['img_per_s']:.0f} img/s ({row['images']} in {row['seconds']:.2f} s)"
            else:
                figure = f"{row['img_per_s']:.0f} img/s (max {row['max']:.0f})"
            lines.append(f"| {result['job']} | {label} | {figure} |")
        notes = {key: value for key, value in result.items() if key not in ("job", "rows")}
        lines.append(f"| {result['job']} | notes | {json.dumps(notes)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench_gpu"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--barrier-s", type=float, default=120.0, help="the longest wait for every job to compile")
    parser.add_argument("--timeout-s", type=float, default=220.0, help="a job still running then is killed")
    parser.add_argument("--batch", type=int, default=0, help="every batched job's batch instead (CPU trials)")
    parser.add_argument("--scale", type=float, default=1.0, help="scales the timed calls (CPU trials)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls at batch 1")
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    args.scratch.mkdir(parents=True, exist_ok=True)
    for pattern in ("ready.*", "failed.*", "result.*", "log.*"):  # not gpu.lock: run.sh may hold it
        for stale in args.scratch.glob(pattern):
            stale.unlink()
    (args.scratch / "jobs").write_text(str(len(args.jobs)))
    (args.scratch / "started").write_text(str(time.time()))
    (args.scratch / "deadline").write_text(str(time.time() + args.barrier_s))
    environment = dict(os.environ, TORCHINDUCTOR_COMPILE_THREADS=os.environ.get("TORCHINDUCTOR_COMPILE_THREADS", "4"),
                       PYTHONUNBUFFERED="1")
    processes, started = {}, time.time()
    for name in args.jobs:
        command = [sys.executable, __file__, "--worker", name, "--out", str(args.out), "--scratch", str(args.scratch),
                   "--device", args.device, "--batch", str(args.batch), "--scale", str(args.scale),
                   "--calls", str(args.calls)]
        with open(args.scratch / f"log.{name}.txt", "w") as log:
            processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                               cwd=REPO)
    for name, process in processes.items():
        try:
            process.wait(timeout=max(1.0, args.timeout_s - (time.time() - started)))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    results, logs = [], []
    for name in args.jobs:
        path = args.scratch / f"result.{name}.json"
        log = (args.scratch / f"log.{name}.txt").read_text(errors="replace")
        results.append(json.loads(path.read_text()) if path.exists()
                       else {"job": name, "error": log[-2000:] or "no result (killed at --timeout-s?)"})
        logs.append(f"===== {name}\n{log[-4000:]}")
    text = table(results)
    turns = [result["turn_began_s"] for result in results if "turn_began_s" in result]
    late = [result["job"] for result in results if turns and result.get("ready_s", 0) > min(turns)]
    if late:
        text += f"\n\nNot timed alone: {', '.join(late)} compiled past the barrier, while others had their turns."
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "logs.txt").write_text("\n".join(logs))
    print(text)
    print(f"all jobs: {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
