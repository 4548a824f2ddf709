#!/usr/bin/env bash
# One GPU at klue/roberta-base / roberta-small shapes, batch 128. Budget: < 10 minutes.
# 1. Training-step comparison, bf16: sentences/s of the reference-faithful baseline and of kodiffcse, the ratio,
#    useful FLOP/s as a share of a bf16 matmul peak measured in the same run (MFU), and peak GPU memory.
# 2. The full-size rehearsal of the reference recipe through the CLI (benchmarks/rehearsal.py): train, --resume,
#    evaluate, export onnx, SentenceTransformer(best); step time, sentences/s, peak GPU memory, and whether every
#    process exited by itself.
#   bash benchmarks/gpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export TOKENIZERS_PARALLELISM=true KODIFFCSE_CACHE="${KODIFFCSE_CACHE:-/tmp/kodiffcse-cache}"
timeout 280 python benchmarks/train_step.py --size base --batch-size 128 --max-len 64 --precision bf16 \
  --steps 20 --warmup 3 --json "$out/gpu_base_bf16.json"
status=0
timeout 330 python benchmarks/rehearsal.py --size base --steps 20 --resume-steps 10 --timeout 240 --exit-grace 30 \
  --quiet --logs "$out/rehearsal_logs" --json "$out/gpu_rehearsal_base.json" || status=$?
echo "rehearsal: exit $status (0: every process exited 0 by itself)"
exit $status
