#!/usr/bin/env bash
# Issue 29's GPU figures and GPU checks (issue 20's tables among them) in one device call of under
# 10 minutes (about 8.5 at most), from the checkout's root:
#     bash benchmarks/gpu/run.sh          (files in $OUT, default /tmp/gpu-out)
# The GPU machine has no network: first, here, `bash benchmarks/gpu/fetch_wheels.sh`, then carry
# benchmarks/gpu/wheels (about 40 MB: TorchCodec, nvImageCodec, nvJPEG) with the call; a wheel whose
# package already imports there is not installed.
# 0. env.txt: the GPU, the versions, which JPEG library loads on cuda (jpeg_backends.py's choice);
# 1. bench_gpu.py (at most 300 s): the model jobs (ResNeXt101 bs256/bs1, EfficientNet-B0 bs256,
#    GPUNet-0 bs1/bs256: ours vs timm eager / torch.compile, fp16) and the classify job (resnet50
#    fp16, batch 128, 8,192 JPEGs of 1280-2048 px: each decoder alone, GPU decoding with each JPEG
#    library - the decode ceiling and the figures for jpeg_backends.PREFERENCE -, the model alone,
#    the local engine end to end with gpu, hybrid and cpu decoding) compile in parallel processes,
#    then take turns on the GPU under a file lock;
# 2. meanwhile, holding that lock while the jobs compile (150 s at most, the barrier is at 160 s):
#    every CUDA-marked test of the files below (the 200-iteration stream test with each JPEG library,
#    nvJPEG's pixels against the documented bound, EXIF on the GPU, the GPU Triton repository, TF32
#    and strict fp32, CUDA graphs, finetune on cuda) and an fp16 GPU Triton repository by hand;
# 3. then bench_finetune.py: finetune's training step against the plain timm loop, resnet18 batch
#    128 at 224 px, bf16 autocast, eager and torch.compile (issue 21's goal: >= 1.2x), 150 s at most.
# Files back in $OUT (7): env.txt, table.md, results.json, logs.txt, pytest.txt, triton.txt, finetune.txt.
# A step cut off by its timeout says so with rc=124.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-out}
SCRATCH=${SCRATCH:-/tmp/bench_gpu}
mkdir -p "$OUT" "$SCRATCH"
export PYTHONUNBUFFERED=1 CONVNETS_HUB_OFFLINE=1
for wheel in benchmarks/gpu/wheels/*.whl; do
  [ -e "$wheel" ] || continue
  case "$(basename "$wheel")" in
    torchcodec-*) module=torchcodec ;;
    nvidia_nvimgcodec*) module=nvidia.nvimgcodec ;;
    *) module="" ;;  # nvJPEG: installed beside nvImageCodec
  esac
  if [ -z "$module" ] || ! python3 -c "import $module" 2>/dev/null; then
    timeout 30 python3 -m pip install -q --no-deps --no-index "$wheel" >> "$OUT/env.txt" 2>&1
  fi
done
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, torchvision, timm; print(torch.__version__, torchvision.__version__, timm.__version__)"
  python3 -m pip list 2>/dev/null | grep -Ei "^(torchcodec|nvidia-nvimgcodec|nvidia-nvjpeg) "
  echo "cores: $(nproc)"
  timeout 45 python3 -c "
import models
from convnets_hub.models.batch.jpeg_backends import BACKENDS, choose_jpeg_backend
from convnets_hub.models.errors import InvalidArgumentError
print('default JPEG library on cuda:', choose_jpeg_backend('cuda').name)
for name in BACKENDS:
    try:
        choose_jpeg_backend('cuda', name)
        print(name, 'decodes on cuda')
    except InvalidArgumentError as error:
        print(error)"; } >> "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

checks() {
  python3 -c "import fcntl; fcntl.flock(9, fcntl.LOCK_EX)"  # the lock stays held through fd 9 until checks end
  timeout 120 python3 -m pytest -q -s -p no:cacheprovider -rs -m cuda \
    tests/models/batch/test_jpeg_decoding.py tests/models/batch/test_classify.py tests/models/deploy/test_export.py tests/models/runtime/test_optimize.py \
    tests/models/train/test_finetune.py > "$OUT/pytest.txt" 2>&1
  echo "CUDA tests rc=$?" >> "$OUT/pytest.txt"
  rm -rf "$SCRATCH/triton"
  timeout 20 python3 -m models export --entrypoint resnet18_ssl --no-pretrained --device cuda --model-math fp16 \
    --format onnx --triton-repository "$SCRATCH/triton" > "$OUT/triton.txt" 2>&1
  echo "export rc=$?" >> "$OUT/triton.txt"
  timeout 10 python3 benchmarks/gpu/check_triton.py "$SCRATCH/triton/resnet18_ssl" >> "$OUT/triton.txt" 2>&1
}
checks 9>"$SCRATCH/gpu.lock" &
CHECKS=$!

timeout 300 python3 benchmarks/gpu/bench_gpu.py --out "$OUT" --scratch "$SCRATCH" --barrier-s 160 --timeout-s 290
echo "bench_gpu rc=$?"
wait "$CHECKS"

timeout 50 python3 benchmarks/bench_finetune.py --device cuda --amp bf16 --batch-size 128 --image-size 224 \
  --steps 10 --passes 3 >> "$OUT/finetune.txt" 2>&1
echo "bench_finetune eager rc=$?" >> "$OUT/finetune.txt"
timeout 100 python3 benchmarks/bench_finetune.py --device cuda --amp bf16 --batch-size 128 --image-size 224 \
  --steps 10 --passes 3 --compile >> "$OUT/finetune.txt" 2>&1
echo "bench_finetune compiled rc=$?" >> "$OUT/finetune.txt"
grep -E "^(cuda|cpu|torchcodec|nvimgcodec|torchvision):|passed|failed|rc=" "$OUT/pytest.txt"
tail -3 "$OUT/triton.txt"
grep -E "^\||rc=|^resnet" "$OUT/finetune.txt"
