#!/usr/bin/env bash
# Training-step comparison on one GPU at klue/roberta-base / roberta-small shapes, batch 128, bf16.
# Prints sentences/s of the reference-faithful baseline and of kodiffcse, the ratio, useful FLOP/s as a
# share of a bf16 matmul peak measured in the same run (MFU), and peak GPU memory. Budget: < 5 minutes.
#   bash benchmarks/gpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export TOKENIZERS_PARALLELISM=true KODIFFCSE_CACHE="${KODIFFCSE_CACHE:-/tmp/kodiffcse-cache}"
timeout 280 python benchmarks/train_step.py --size base --batch-size 128 --max-len 64 --precision bf16 \
  --steps 20 --warmup 3 --json "$out/gpu_base_bf16.json"
