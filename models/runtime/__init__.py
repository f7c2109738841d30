"""Runtime: precision and device, BatchNorm folding and the inference-only optimized model."""
