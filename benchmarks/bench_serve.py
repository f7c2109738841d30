"""Served throughput (Triton through PyTriton) against in-process inference, and onnxruntime against ours.

Example (CPU, about 6 minutes on 2 cores)::

    python3 benchmarks/bench_serve.py --entrypoint resnet50 --clients 8 --seconds 30 --json out.json

One process drives everything, with one set of random weights (written to a temporary checkpoint):

* in process: ``optimize=True`` (fp32) and the exported ONNX model in onnxruntime's CPU provider,
  at each ``--batch-sizes``, p50 of timed calls after warm-up; measured before and again after the
  server run, so that load drift shows;
* served: ``python3 -m models serve --optimize`` on loopback ports, every batch size up to
  ``--clients`` sent once to compile it, then ``--clients`` threads, each with its own HTTP client,
  send batch-1 tensor requests back to back for ``--seconds``; img/s and p50/p99 latency.

Clients and server share the machine's cores, as they would on one host.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import tritonclient.http as triton_http

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
importlib.import_module("models")  # mounts this checkout's library as convnets_hub.models
from convnets_hub.models.deploy.exporters import export_model
from convnets_hub.models.hub import entrypoint

READY_DEADLINE_S = 600


def time_calls(run: Callable[[], object], warmup: int = 3, seconds: float = 8.0) -> float:
    """The median seconds of one call, from as many calls as fit in ``seconds`` (at least 5)."""
    for _ in range(warmup):
        run()
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(durations) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def in_process(name: str, weights: Path, onnx_path: Path, batch_sizes: list[int]) -> dict[str, dict[int, float]]:
    """img/s of ``optimize=True`` and onnxruntime at each batch size."""
    optimized = entrypoint(name)(weights=str(weights), optimize=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    results: dict[str, dict[int, float]] = {"optimize=True": {}, "onnxruntime": {}}
    for batch in batch_sizes:
        x = torch.randn(batch, *optimized.pretrained_cfg["input_size"])
        with torch.inference_mode():
            results["optimize=True"][batch] = batch / time_calls(lambda x=x: optimized(x))
        feed = {"input": x.numpy()}
        results["onnxruntime"][batch] = batch / time_calls(lambda feed=feed: session.run(None, feed))
    return results


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def request(client: triton_http.InferenceServerClient, name: str, batch: np.ndarray) -> None:
    tensor = triton_http.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    client.infer(name, [tensor])


def served(name: str, weights: Path, clients: int, seconds: float, log: Path) -> dict[str, float]:
    """img/s and latency percentiles of ``clients`` threads sending batch-1 requests to the server."""
    http_port, grpc_port, metrics_port = free_ports(3)
    command = [sys.executable, "-m", "models", "serve", "--entrypoint", name, "--weights", str(weights),
               "--optimize", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
               "--metrics-port", str(metrics_port), "--max-batch-size", str(clients)]
    url = f"127.0.0.1:{http_port}"
    with log.open("w") as output:
        server = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    try:
        client = triton_http.InferenceServerClient(url)
        deadline = time.monotonic() + READY_DEADLINE_S
        while not _ready(client, name):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        shape = entrypoint(name)(pretrained=False).pretrained_cfg["input_size"]
        for batch in range(1, clients + 1):  # torch.compile compiles each batch size at its first call
            request(client, name, np.random.rand(batch, *shape).astype(np.float32))
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def client_loop() -> None:
            own = triton_http.InferenceServerClient(url)
            x = np.random.rand(1, *shape).astype(np.float32)
            mine = []
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                request(own, name, x)
                mine.append(time.perf_counter() - start)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client_loop) for _ in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        ordered = sorted(latencies)
        return {"img_s": len(latencies) / elapsed, "p50_ms": 1000 * ordered[len(ordered) // 2],
                "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
                "requests": len(latencies)}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)


def _ready(client: triton_http.InferenceServerClient, name: str) -> bool:
    try:
        return client.is_model_ready(name)
    except (ConnectionError, OSError, Exception):  # noqa: BLE001 - not listening yet
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entrypoint", default="resnet50")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("CONVNETS_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        weights, onnx_path = Path(scratch) / "weights.pth", Path(scratch) / "model.onnx"
        model = entrypoint(args.entrypoint)(pretrained=False).eval()
        torch.save(model.state_dict(), weights)
        export_model(model, onnx_path, "onnx")
        print(f"load average before: {os.getloadavg()}", flush=True)
        before = in_process(args.entrypoint, weights, onnx_path, args.batch_sizes)
        print(f"in process: {before}", flush=True)
        serving = served(args.entrypoint, weights, args.clients, args.seconds, Path(scratch) / "server.log")
        print(f"served: {serving}", flush=True)
        after = in_process(args.entrypoint, weights, onnx_path, args.batch_sizes)
        print(f"in process again: {after}; load average after: {os.getloadavg()}", flush=True)
    report = {"entrypoint": args.entrypoint, "clients": args.clients, "served": serving,
              "in_process_before": before, "in_process_after": after}
    for batch in args.batch_sizes:
        for label, figures in (("before", before), ("after", after)):
            ours, ort = figures["optimize=True"][batch], figures["onnxruntime"][batch]
            print(f"batch {batch} ({label}): served/in-process optimize=True {serving['img_s'] / ours:.2f}x, "
                  f"onnxruntime/optimize=True {ort / ours:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
