"""``python3 -m models serve``: a real Triton Inference Server (NVIDIA's PyTriton) answering tensor and image requests."""

from __future__ import annotations

import argparse

from .arguments import CommandError, add_model_arguments, positive_int
from .extras import require
from .model_options import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a model on Triton Inference Server (PyTriton), tensors and images",
        description="Serve two Triton models: <name> (FP32 'input' [N, C, H, W] -> 'logits', batched "
                    "dynamically across clients) and <name>_image (encoded image bytes 'image' [N, 1] -> "
                    "top-k 'labels', 'probabilities', 'class_ids', preprocessed on the server), <name> "
                    "being the entrypoint plus the GPUNet type. Ctrl-C or SIGTERM stops it.")
    add_model_arguments(parser)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                                                            "0.0.0.0 for every interface)")
    server.add_argument("--http-port", type=int, default=8000, metavar="PORT", help="default 8000")
    server.add_argument("--grpc-port", type=int, default=8001, metavar="PORT", help="default 8001")
    server.add_argument("--metrics-port", type=int, default=8002, metavar="PORT", help="default 8002")
    server.add_argument("--max-batch-size", type=positive_int, default=64, metavar="N",
                        help="the largest batch dynamic batching forms (default 64)")
    server.add_argument("--top-k", type=positive_int, default=5, metavar="K",
                        help="labels returned per image by <name>_image (default 5)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for option in ("http_port", "grpc_port", "metrics_port"):
        if not 0 < getattr(args, option) < 65536:
            raise CommandError(f"--{option.replace('_', '-')} {getattr(args, option)} is not a port (1-65535)")
    if len({args.http_port, args.grpc_port, args.metrics_port}) != 3:
        raise CommandError("--http-port, --grpc-port and --metrics-port must differ")
    require("serve", "pytriton")
    from ..deploy import server  # PyTriton: imported only to serve

    model = load_model(args)
    settings = server.ServerSettings(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                                     metrics_port=args.metrics_port, max_batch_size=args.max_batch_size,
                                     top_k=args.top_k)
    server.serve(model, settings)
    return 0
