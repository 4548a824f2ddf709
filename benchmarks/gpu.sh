#!/usr/bin/env bash
# One GPU at klue/roberta-base / roberta-small shapes, batch 128, bf16, on the default training path
# (random batches, padding-free: flash-attn's varlen kernel when the `flash` extra is installed, else the
# exact SDPA fallback). Parts, each under its own timeout (all three: under 12 minutes):
#   step       training step against the reference-faithful baseline: sentences/s, the ratio, useful FLOP/s as
#              a share of a bf16 matmul peak measured in the same run (MFU), peak GPU memory        (< 5 min)
#   peer       kodiffcse --objective simcse against sentence-transformers' MNRL recipe (its own flattening
#              applies when flash attention is installed)                                           (< 2 min)
#   rehearsal  the reference recipe through the CLI (benchmarks/rehearsal.py): train, --resume, evaluate,
#              export onnx, SentenceTransformer(best), and whether every process exited by itself    (< 5.5 min)
#   bash benchmarks/gpu.sh [OUT_DIR] [PART ...]        # default: all parts
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp}}"
shift || true
parts="${*:-step peer rehearsal}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import importlib.util as u; print('flash-attn installed:', u.find_spec('flash_attn') is not None)"
export TOKENIZERS_PARALLELISM=true KODIFFCSE_CACHE="${KODIFFCSE_CACHE:-/tmp/kodiffcse-cache}"
status=0
for part in $parts; do
  case "$part" in
    step) timeout 280 python benchmarks/train_step.py --size base --batch-size 128 --max-len 64 --precision bf16 \
            --steps 20 --warmup 3 --json "$out/gpu_base_bf16.json" || status=$? ;;
    peer) timeout 120 python benchmarks/simcse_peer.py --size base --batch-size 128 --max-len 64 --precision bf16 \
            --steps 10 --warmup 3 --json "$out/gpu_simcse_peer.json" || status=$? ;;
    rehearsal) timeout 330 python benchmarks/rehearsal.py --size base --steps 20 --resume-steps 10 --timeout 240 \
                 --exit-grace 30 --quiet --logs "$out/rehearsal_logs" --json "$out/gpu_rehearsal_base.json" || status=$?
               echo "rehearsal: exit $status (0: every process exited 0 by itself)" ;;
    *) echo "unknown part $part (step, peer, rehearsal)" >&2; exit 2 ;;
  esac
done
exit $status
