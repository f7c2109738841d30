#!/usr/bin/env bash
# Issue 20's GPU figures and GPU checks in one device call of under 4 minutes, from the checkout's root:
#     bash benchmarks/gpu/run.sh          (files in $OUT, default /tmp/gpu-out)
# 1. bench_gpu.py: the model jobs (ours vs timm eager / torch.compile, fp16) and the classify job
#    (each decoder alone, the model alone, the local engine with GPU, hybrid and CPU decoding)
#    compile in parallel processes, then take turns on the GPU under a file lock;
# 2. meanwhile, holding that lock while the jobs compile: the CUDA tests of this issue (nvJPEG's
#    pixel difference and top-5 agreement, EXIF orientation on the GPU, TF32 and strict fp32,
#    the GPU Triton repository) and an fp16 GPU Triton repository written and checked by hand
#    (tritonclient, which the test parses with, may be missing there).
# Files back in $OUT (6): env.txt, table.md, results.json, logs.txt, pytest.txt, triton.txt.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-out}
SCRATCH=${SCRATCH:-/tmp/bench_gpu}
mkdir -p "$OUT" "$SCRATCH"
export PYTHONUNBUFFERED=1 CONVNETS_HUB_OFFLINE=1
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, torchvision, timm; print(torch.__version__, torchvision.__version__, timm.__version__)"
  echo "cores: $(nproc)"; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

(
  python3 -c "import fcntl; fcntl.flock(9, fcntl.LOCK_EX)"  # held by this subshell's fd 9 until it ends
  timeout 140 python3 -m pytest -q -s -p no:cacheprovider -rs \
    "tests/test_classify.py::test_gpu_decoding_stays_close_to_the_hub_pixels[cuda]" \
    "tests/test_classify.py::test_gpu_decoder_turns_photos_upright_as_the_cpu_path_does" \
    "tests/test_optimize.py::test_an_optimized_model_moved_to_cuda_uses_cuda_graphs" \
    "tests/test_optimize.py::test_strict_fp32_on_cuda_is_one_pytorch_setting_away" \
    "tests/test_export.py::test_gpu_triton_repository_from_the_command_line" > "$OUT/pytest.txt" 2>&1
  echo "pytest rc=$?" >> "$OUT/pytest.txt"
  rm -rf "$SCRATCH/triton"
  timeout 60 python3 -m models export --entrypoint resnet18_ssl --no-pretrained --device cuda --model-math fp16 \
    --format onnx --triton-repository "$SCRATCH/triton" > "$OUT/triton.txt" 2>&1
  { cat "$SCRATCH/triton/resnet18_ssl/config.pbtxt"
    python3 - "$SCRATCH/triton/resnet18_ssl" <<'EOF'
import re, sys
from pathlib import Path
import onnx
folder = Path(sys.argv[1])
text = (folder / "config.pbtxt").read_text()
graph = onnx.load(str(folder / "1" / "model.onnx")).graph
checks = {"KIND_GPU on GPU 0": re.search(r"kind: KIND_GPU\s+gpus: \[ 0 \]", text) is not None,
          "TYPE_FP16 in and out": text.count("data_type: TYPE_FP16") == 2,
          "ONNX input and output FLOAT16": graph.input[0].type.tensor_type.elem_type
          == graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
print(checks, "OK" if all(checks.values()) else "FAILED")
EOF
  } >> "$OUT/triton.txt" 2>&1
) 9>"$SCRATCH/gpu.lock" &
CHECKS=$!

timeout 225 python3 benchmarks/gpu/bench_gpu.py --out "$OUT" --scratch "$SCRATCH" --barrier-s 110 --timeout-s 215
echo "bench_gpu rc=$?"
wait "$CHECKS"
tail -4 "$OUT/pytest.txt"
tail -2 "$OUT/triton.txt"
