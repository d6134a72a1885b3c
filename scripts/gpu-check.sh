#!/usr/bin/env bash
# The CUDA check, for a GPU machine with python3 + torch 2.11 and the bundle from
# scripts/gpu-bundle.sh in .gpu/: device discovery, a 2-run sweep (fp32 and bf16 autocast) on
# `devices = "auto"`, its report (device and images/s per run), then the training benchmark
# (PyTorch eager on cuda:0 as the baseline; pixelx fp32 and bf16 in both layouts, and on NHWC
# with cropped h_conv kernels too: the CPU default, which these figures would make CUDA's; and
# the CPU figures with the roofline line), packing on the GPU (4 small runs, 2 per device against 1),
# and the dry-run estimate of the shipped mnist_sweep.toml on the GPUs (the README's GPU figure).
# Logs and the HTML report go to $OUT (the device tool's result folder) or ./gpu-check-out.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
export PIXELX_DATA_DIR=.gpu/data PIXELX_RUNS_DIR="/tmp/pixelx-gpu-runs" PIXELX_PYTHON=python3

# Wall seconds of a 4-run sweep of small models on devices = "auto" with $1 runs per device.
packed_sweep() {
  local file="/tmp/pixelx-gpu-pack-$1.toml"
  printf '%s\n' '[experiment]' "name = \"gpu_pack_$1\"" 'dataset = "mnist"' '[defaults]' 'epochs = 1' \
    'hidden_fmaps = 16' 'out_hidden_fmaps = 16' 'hidden_layers = 2' 'train_subset = 10000' \
    'test_subset = 1000' 'epoch_samples = 0' 'batch_size = 64' '[grid]' 'seed = [1, 2, 3, 4]' \
    '[scheduler]' 'devices = "auto"' "runs_per_device = $1" >"$file"
  local start=$SECONDS
  .gpu/pixelx --runs-dir "/tmp/pixelx-gpu-pack-$1" -q run "$file" >/dev/null
  echo $((SECONDS - start))
}

{
  nvidia-smi -L
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count())'
  time .gpu/pixelx run experiments/gpu_check.toml --quiet
  .gpu/pixelx report
  # pixelx loads libtorch's CUDA backend at run time; `devices = "auto"` falls back to the CPU
  # where it does not load, so say it loudly here rather than in a warning above.
  if .gpu/pixelx report --format json | grep -q '"device": "cuda:'; then
    echo "CUDA check: the gpu_check runs trained on CUDA"
  else
    echo "CUDA check FAILED: no gpu_check run trained on a CUDA device"
  fi
  .gpu/pixelx report --best --html "$out/report.html"
  time .gpu/pixelx run experiments/mnist_sweep.toml --dry-run
  PIXELX_BENCH_ROUNDS=3 timeout 420 .gpu/speed training
  one=$(packed_sweep 1)
  two=$(packed_sweep 2)
  echo "packing on cuda: 4 small runs, 1 per device ${one} s (baseline), 2 per device ${two} s: $(python3 -c "print(f'{$one/max($two,1):.2f}x')")"
} 2>&1 | tee "$out/gpu-check.log"
