"""A GPU Triton model folder (``export --device cuda --model-math fp16 --triton-repository``), checked
without tritonclient: config.pbtxt parsed with Triton's ModelConfig where tritonclient is installed,
else read for its fields; the ONNX file's I/O types read with onnx.

    python3 benchmarks/gpu/check_triton.py DIR/resnet18_ssl
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import onnx


def main() -> int:
    folder = Path(sys.argv[1])
    text = (folder / "config.pbtxt").read_text()
    print(text)
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2

        config = text_format.Parse(text, model_config_pb2.ModelConfig())
        groups = [(model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind), list(group.gpus))
                  for group in config.instance_group]
        types = {model_config_pb2.DataType.Name(tensor.data_type) for tensor in [*config.input, *config.output]}
        parsed_with = "Triton's ModelConfig"
    except ImportError:
        groups = [(kind, [int(gpu) for gpu in gpus.split()]) for kind, gpus
                  in re.findall(r"kind: (KIND_\w+)\s+gpus: \[([\d ]+)\]", text)]
        types = set(re.findall(r"data_type: (TYPE_\w+)", text))
        parsed_with = "field patterns (tritonclient is not installed)"
    graph = onnx.load(str(folder / "1" / "model.onnx")).graph
    onnx_types = {onnx.TensorProto.DataType.Name(tensor.type.tensor_type.elem_type)
                  for tensor in [*graph.input, *graph.output]}
    checks = {"instance group KIND_GPU on GPU 0": groups == [("KIND_GPU", [0])],
              "config I/O TYPE_FP16": types == {"TYPE_FP16"},
              "ONNX I/O FLOAT16": onnx_types == {"FLOAT16"}}
    print(f"parsed with {parsed_with}: {checks}: {'OK' if all(checks.values()) else 'FAILED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
