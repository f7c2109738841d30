"""The file formats a model exports to, named where the command line can list them without importing torch."""

FORMATS = ("onnx", "torchscript", "exported-program")
