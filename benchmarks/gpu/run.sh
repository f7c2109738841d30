#!/usr/bin/env bash
# Issue 20's GPU figures and GPU checks in one device call of under 4 minutes, from the checkout's root:
#     bash benchmarks/gpu/run.sh          (files in $OUT, default /tmp/gpu-out)
# 1. bench_gpu.py: the model jobs (ours vs timm eager / torch.compile, fp16) and the classify job
#    (each decoder alone, the model alone, the local engine with GPU, hybrid and CPU decoding)
#    compile in parallel processes, then take turns on the GPU under a file lock (at most 230 s);
# 2. meanwhile, holding that lock while the jobs compile (110 s at most, the barrier is at 120 s):
#    the CUDA tests of this issue (nvJPEG's pixel difference and top-5 agreement, EXIF orientation
#    on the GPU, the GPU Triton repository, strict fp32 and TF32) and an fp16 GPU Triton
#    repository written and checked by hand (tritonclient, which the test parses with, may be
#    missing there). A check cut off by its timeout says so in its rc (124).
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

checks() {
  python3 -c "import fcntl; fcntl.flock(9, fcntl.LOCK_EX)"  # the lock stays held through fd 9 until checks end
  timeout 45 python3 -m pytest -q -s -p no:cacheprovider -rs \
    "tests/test_classify.py::test_gpu_decoding_stays_close_to_the_hub_pixels[cuda]" \
    "tests/test_classify.py::test_gpu_decoder_turns_photos_upright_as_the_cpu_path_does" > "$OUT/pytest.txt" 2>&1
  echo "decoding tests rc=$?" >> "$OUT/pytest.txt"
  rm -rf "$SCRATCH/triton"
  timeout 30 python3 -m models export --entrypoint resnet18_ssl --no-pretrained --device cuda --model-math fp16 \
    --format onnx --triton-repository "$SCRATCH/triton" > "$OUT/triton.txt" 2>&1
  echo "export rc=$?" >> "$OUT/triton.txt"
  timeout 10 python3 benchmarks/gpu/check_triton.py "$SCRATCH/triton/resnet18_ssl" >> "$OUT/triton.txt" 2>&1
  timeout 35 python3 -m pytest -q -s -p no:cacheprovider -rs \
    "tests/test_export.py::test_gpu_triton_repository_from_the_command_line" \
    "tests/test_optimize.py::test_strict_fp32_on_cuda_is_one_pytorch_setting_away" \
    "tests/test_optimize.py::test_an_optimized_model_moved_to_cuda_uses_cuda_graphs" >> "$OUT/pytest.txt" 2>&1
  echo "export/optimize tests rc=$?" >> "$OUT/pytest.txt"
}
checks 9>"$SCRATCH/gpu.lock" &
CHECKS=$!

timeout 230 python3 benchmarks/gpu/bench_gpu.py --out "$OUT" --scratch "$SCRATCH" --barrier-s 120 --timeout-s 220
echo "bench_gpu rc=$?"
wait "$CHECKS"
grep -E "^(cuda|cpu):|passed|failed|rc=" "$OUT/pytest.txt"
tail -3 "$OUT/triton.txt"
