"""``python3 -m models export``: a model as ONNX, TorchScript or ExportedProgram, or a Triton model repository."""

from __future__ import annotations

import argparse

from ..deploy.formats import FORMATS
from .arguments import CommandError, add_model_arguments, positive_int
from .extras import require
from .model_options import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX, TorchScript or ExportedProgram, or a Triton model repository",
        description="Write a model with a dynamic batch axis (input 'input' [N, C, H, W], output 'logits' "
                    "[N, classes]) to a file, or a Triton Inference Server model repository with "
                    "config.pbtxt and the class labels.")
    add_model_arguments(parser, optimize=False)
    parser.add_argument("--format", required=True, choices=FORMATS, help="the file format")
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default 17; 18 with --dynamo)")
    parser.add_argument("--dynamo", action="store_true",
                        help="ONNX through torch's torch.export-based exporter (opset 18+; slower to export)")
    parser.add_argument("--max-batch-size", type=positive_int, default=64, metavar="N",
                        help="the Triton repository's max_batch_size (default 64)")
    destination = parser.add_mutually_exclusive_group(required=True)
    destination.add_argument("--output", metavar="FILE", help="the file to write")
    destination.add_argument("--triton-repository", metavar="DIR",
                             help="a Triton model repository to write the model into (onnx or torchscript)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.triton_repository and args.format == "exported-program":
        raise CommandError("--format exported-program cannot go into a Triton repository; use onnx or torchscript")
    if args.format == "onnx":
        require("--format onnx", "onnx", *(["onnxscript"] if args.dynamo else []))
    from ..deploy.exporters import export_model
    from ..deploy.triton_repository import write_triton_repository

    model = load_model(args, optimize=False)
    if args.triton_repository:
        folder = write_triton_repository(
            model, args.triton_repository, args.format, max_batch_size=args.max_batch_size, opset=args.opset,
            dynamo=args.dynamo)
        print(f"wrote Triton model {folder.name!r} to {folder}")
    else:
        path = export_model(model, args.output, args.format, opset=args.opset, dynamo=args.dynamo)
        print(f"wrote {path}")
    return 0
