#!/usr/bin/env bash
# The CUDA check, for a GPU machine with python3 + torch 2.11 and the bundle from
# scripts/gpu-bundle.sh in .gpu/: device discovery, a 2-run sweep (fp32 and bf16 autocast) on
# `devices = "auto"`, its report (device and images/s per run), then the training benchmark
# (PyTorch reference vs pixelx, and fp32 vs bf16 in both layouts on cuda:0), and the dry-run
# estimate of the shipped mnist_sweep.toml on the GPUs (the README's GPU figure).
# Logs and the HTML report go to $OUT (the device tool's result folder) or ./gpu-check-out.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
export PIXELX_DATA_DIR=.gpu/data PIXELX_RUNS_DIR="/tmp/pixelx-gpu-runs" PIXELX_PYTHON=python3
{
  nvidia-smi -L
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count())'
  time .gpu/pixelx run experiments/gpu_check.toml --quiet
  .gpu/pixelx report
  .gpu/pixelx report --best --html "$out/report.html"
  time .gpu/pixelx run experiments/mnist_sweep.toml --dry-run
  timeout 300 .gpu/speed training
} 2>&1 | tee "$out/gpu-check.log"
