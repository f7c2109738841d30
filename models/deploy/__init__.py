"""Taking models out of Python: ONNX, TorchScript and ExportedProgram files, Triton model repositories
and a Triton Inference Server (through PyTriton) answering tensor and image requests."""
