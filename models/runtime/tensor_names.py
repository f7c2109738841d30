"""The names of a model's input and output tensors in every graph we write: ONNX files, Triton's repository,
the int8 model's ONNX Runtime session."""

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
