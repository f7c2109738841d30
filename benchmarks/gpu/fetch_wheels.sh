#!/usr/bin/env bash
# The JPEG libraries that benchmarks/gpu/run.sh measures, as wheels for a GPU machine without network:
# TorchCodec and nvImageCodec with nvJPEG, for this machine's Python and torch's CUDA (12 or 13).
# Run where PyPI is reachable, then carry benchmarks/gpu/wheels (git ignores it) with the device call.
set -eu
cd "$(dirname "$0")"
CUDA=$(python3 -c "import torch; print((torch.version.cuda or '13').split('.')[0])")
rm -rf wheels && mkdir wheels
if [ "$CUDA" = 12 ]; then NVJPEG=nvidia-nvjpeg-cu12; else NVJPEG=nvidia-nvjpeg; fi
python3 -m pip download -q --no-deps -d wheels torchcodec "nvidia-nvimgcodec-cu$CUDA" "$NVJPEG"
ls -l wheels
