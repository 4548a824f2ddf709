#!/usr/bin/env bash
# Reproduce the reference KoDiffCSE table in one command (a GPU machine with network access):
#   bash recipes/reproduce.sh [OUT]            KorSTS, the Korean Wikipedia corpus, klue/* models, 1 epoch per row
#   bash recipes/reproduce.sh --smoke [OUT]    the same script end to end on tiny offline models (minutes on a CPU)
#
# It fetches KorSTS (checksummed), builds the Korean Wikipedia corpus, trains each row of the reference's table with
# the reference recipe (kodiffcse train's defaults), evaluates every trained model on KorSTS test over the whole set
# and with the reference's per-batch protocol (batches of 128, seed 0), and writes OUT/results/results.md and
# results.json: the reference's table, kodiffcse's rows beside the reference's figures, and the commands that
# produced them (also in OUT/commands.sh, in the order they ran).
#
# Rows (ROWS, a space-separated subset):
#   simcse-bert      KoSimCSE-BERT       klue/bert-base, --objective simcse
#   simcse-roberta   KoSimCSE-RoBERTa    klue/roberta-base, --objective simcse
#   diffcse-roberta  KoDiffCSE-RoBERTa   klue/roberta-base + klue/roberta-small (the default recipe)
#   diffcse-bert     KoDiffCSE-BERT      klue/bert-base + --generator layers:$BERT_GENERATOR_LAYERS (its own first
#                                        layers as generator; no reference figure: the reference had no BERT generator)
# Other settings, from the environment: KORSTS_FROM=DIR (local sts-{train,dev,test}.tsv instead of the download),
# WIKI_DUMP=FILE (a kowiki-*-pages-articles.xml.bz2 already on disk), TRAIN_ARGS (added to every kodiffcse train,
# e.g. "--num-workers 4"), KODIFFCSE (the command, default: kodiffcse), PYTHON (default: python); in --smoke mode
# KORSTS_FROM and SMOKE_SENTENCES (the sentences of its synthetic dump and tiny vocabulary) default to ../shared/data.
# Running it again continues: KorSTS and the corpus are kept, finished rows are skipped, an interrupted row resumes
# from its last checkpoint (with the same options), and the evaluations and the table are redone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
smoke=0
if [[ "${1:-}" == "--smoke" ]]; then smoke=1; shift; fi
out="${1:-reproduce}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
read -r -a kodiffcse <<< "${KODIFFCSE:-kodiffcse}"
python="${PYTHON:-python}"
rows=(${ROWS:-simcse-bert simcse-roberta diffcse-roberta diffcse-bert})
layers="${BERT_GENERATOR_LAYERS:-6}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"
commands="$out/commands.sh"
data="$out/data"
mkdir -p "$data" "$out/runs" "$out/results"

run() {  # log the command (shell-quoted, runnable) to commands.sh, then run it
  { printf '%q ' "$@"; printf '\n'; } >> "$commands"
  printf '\n+ %s\n' "$*" >&2
  "$@"
}

printf '# %s: bash recipes/reproduce.sh%s %s\n' "$(date -u +%FT%TZ)" "$([[ $smoke == 1 ]] && echo ' --smoke')" "$out" \
  >> "$commands"

if [[ $smoke == 1 ]]; then
  # Offline stand-ins for what a real run downloads: KorSTS from a local copy, a small synthetic kowiki dump made
  # from a few thousand Korean sentences, and tiny random-init models with klue's tokenizer layout
  # (kodiffcse.tiny). Training stops after a few steps of a smaller batch; everything else is the real recipe.
  shared="$(cd "$here/.." && pwd)/../shared/data"
  KORSTS_FROM="${KORSTS_FROM:-$shared/korsts}"
  SMOKE_SENTENCES="${SMOKE_SENTENCES:-$shared/corpus/ko-sentences.txt}"
  if [[ -z "${WIKI_DUMP:-}" ]]; then
    WIKI_DUMP="$data/kowiki-smoke-pages-articles.xml.bz2"
    [[ -s "$WIKI_DUMP" ]] || run "$python" "$here/smoke_inputs.py" dump "$SMOKE_SENTENCES" "$WIKI_DUMP"
  fi
  models="$out/models"
  if [[ ! -f "$models/.done" ]]; then
    run "$python" "$here/smoke_inputs.py" models "$SMOKE_SENTENCES" "$models"
    touch "$models/.done"
  fi
  roberta_base="$models/roberta-base" roberta_small="$models/roberta-small" bert_base="$models/bert-base"
  layers=1
  train_args=(--max-steps 2 --eval-steps 2 --batch-size 32 "${train_args[@]}")
else
  roberta_base=klue/roberta-base roberta_small=klue/roberta-small bert_base=klue/bert-base
fi

# 1. KorSTS, checked against pinned SHA-256 sums
run "${kodiffcse[@]}" data korsts --out "$data/korsts" ${KORSTS_FROM:+--from "$KORSTS_FROM"} --no-progress
dev="$data/korsts/sts-dev.tsv" test="$data/korsts/sts-test.tsv"

# 2. The Korean Wikipedia corpus, one sentence per line (an interrupted build resumes)
corpus="$data/wiki_corpus.txt"
if [[ ! -f "$data/.wiki.done" ]]; then
  resume=(); [[ -e "$corpus" ]] && resume=(--resume)
  if [[ -n "${WIKI_DUMP:-}" ]]; then
    run "${kodiffcse[@]}" data wiki --dump "$WIKI_DUMP" --out "$corpus" --report "$data/wiki_report.json" "${resume[@]}"
  else
    run "${kodiffcse[@]}" data wiki --download --out "$corpus" --report "$data/wiki_report.json" "${resume[@]}"
  fi
  touch "$data/.wiki.done"
fi

# 3. One training run per row, the reference recipe (kodiffcse train's defaults)
trained=()
for row in "${rows[@]}"; do
  case "$row" in
    simcse-bert) recipe=(--model "$bert_base" --objective simcse) ;;
    simcse-roberta) recipe=(--model "$roberta_base" --objective simcse) ;;
    diffcse-roberta) recipe=(--model "$roberta_base" --generator "$roberta_small") ;;
    diffcse-bert) recipe=(--model "$bert_base" --generator "layers:$layers") ;;
    *) echo "reproduce.sh: unknown row $row (known: simcse-bert simcse-roberta diffcse-roberta diffcse-bert)" >&2
       exit 2 ;;
  esac
  dir="$out/runs/$row"
  if [[ ! -f "$dir/.done" ]]; then
    resume=(); [[ -d "$dir/checkpoints" ]] && resume=(--resume)
    run "${kodiffcse[@]}" train "${recipe[@]}" --train-file "$corpus" --dev-file "$dev" --output-dir "$dir" \
      "${train_args[@]}" "${resume[@]}"
    touch "$dir/.done"
  fi
  trained+=(--model "$dir/best")
done

# 4. KorSTS test: whole-set correlations, and the reference's per-batch protocol (not comparable to whole-set)
run "${kodiffcse[@]}" evaluate "${trained[@]}" --data "$test" --json "$out/results/whole-set.json"
run "${kodiffcse[@]}" evaluate "${trained[@]}" --data "$test" --per-batch-average 128 --seed 0 \
  --json "$out/results/per-batch-128.json"

# 5. The reference's table, with the commands above
smoke_flag=(); [[ $smoke == 1 ]] && smoke_flag=(--smoke)
run "$python" "$here/reference_table.py" --whole-set "$out/results/whole-set.json" \
  --per-batch "$out/results/per-batch-128.json" --commands "$commands" --out "$out/results" "${smoke_flag[@]}"
