"""What resolving a cached weights file adds to ``torch.load`` of it, side by side in one process.

A checkpoint of ``--size-mb`` MB (float32 tensors, like a ResNeXt-101 32x8d file) is written into a
temporary torch.hub cache and resolved once (hashed, first-use record written). Then, in interleaved
rounds: ``torch.load`` alone; a cache hit (``resolve_weights_file``: stat and record check, no hash)
then ``torch.load``; and a full sha256 of the file then ``torch.load`` (what every load did before
the records). The file is deleted at the end.

    python3 benchmarks/bench_cache_hit.py [--size-mb 400] [--rounds 7] [--json results.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    importlib.import_module("models")  # mounts this checkout's library as convnets_hub.models
    from convnets_hub.models.weights.manifest import WeightsEntry
    from convnets_hub.models.weights.sources import resolve_weights_file
    from convnets_hub.models.weights.verify import sha256_of


    with tempfile.TemporaryDirectory() as home:
        os.environ["TORCH_HOME"] = home
        path = Path(torch.hub.get_dir()) / "checkpoints" / "bench-weights.pth"
        path.parent.mkdir(parents=True)
        tensors = args.size_mb * 2**20 // 4 // 32
        torch.save({f"layer{i}.weight": torch.randn(tensors) for i in range(32)}, path)
        entry = WeightsEntry(id="bench", entrypoint="bench", urls=(), file_name=path.name, layout="auto",
                             preprocessing={}, license="-", sha256=sha256_of(path), size=path.stat().st_size)
        resolve_weights_file(entry, progress=False)  # the first use: hashed once, recorded

        def load() -> None:
            torch.load(path, map_location="cpu", weights_only=True)

        runs = {"torch.load": load,
                "cache hit + torch.load": lambda: (resolve_weights_file(entry, progress=False), load()),
                "sha256 + torch.load": lambda: (sha256_of(path), load())}
        timings: dict[str, list[float]] = {name: [] for name in runs}
        load()  # page cache warm
        for _ in range(args.rounds):
            for name, run in runs.items():
                timings[name].append(timed(run))
        hit_alone = statistics.median(timed(lambda: resolve_weights_file(entry, progress=False)) for _ in range(50))
        size = path.stat().st_size
    base = statistics.median(timings["torch.load"])
    results = {"file_mb": round(size / 2**20), "rounds": args.rounds, "cache_hit_alone_ms": hit_alone * 1e3,
               **{name: {"median_s": statistics.median(values), "ratio": statistics.median(values) / base}
                  for name, values in timings.items()}}
    print(f"file: {results['file_mb']} MB, {args.rounds} interleaved rounds; cache hit alone "
          f"{results['cache_hit_alone_ms']:.2f} ms (median of 50)")
    for name in runs:
        print(f"{name:<24} median {results[name]['median_s']:.3f} s  ratio {results[name]['ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
