"""The reference's KorSTS table from `kodiffcse evaluate --json` outputs (recipes/reproduce.sh's last step).

  python recipes/reference_table.py --whole-set W.json --per-batch P.json --commands commands.sh --out DIR

Writes DIR/results.md and DIR/results.json: for each trained row, kodiffcse's scores with the reference's per-batch
protocol next to the reference's published figures (same protocol, so these two are the comparison), then
kodiffcse's whole-set scores (the figures to quote; not comparable to per-batch ones), and the commands that
produced them. A row is named by its run dir (OUT/runs/ROW/best).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

# The reference README's table (KoDiffCSE, BM-K): KorSTS test x 100, per-batch protocol, in COLUMNS' order.
REFERENCE = {
    "simcse-bert": ("KoSimCSE-BERT", [71.97, 72.99, 71.94, 71.84, 72.20, 71.68, 72.00, 72.07, 71.05]),
    "simcse-roberta": ("KoSimCSE-RoBERTa", [73.57, 74.32, 73.29, 73.44, 73.29, 73.37, 73.20, 74.37, 73.32]),
    "diffcse-roberta": ("KoDiffCSE-RoBERTa", [75.65, 76.58, 75.42, 75.66, 75.49, 75.63, 75.49, 76.51, 75.30]),
    "diffcse-bert": ("KoDiffCSE-BERT", None),  # the reference trained no BERT generator
}
KEYS = ["average", "cosine_pearson", "cosine_spearman", "euclidean_pearson", "euclidean_spearman",
        "manhattan_pearson", "manhattan_spearman", "dot_pearson", "dot_spearman"]


def row_name(model_path: str) -> str:
    """OUT/runs/ROW/best -> ROW."""
    path = os.path.normpath(model_path)
    return os.path.basename(os.path.dirname(path)) if os.path.basename(path) == "best" else os.path.basename(path)


def load(path: str) -> dict[str, dict]:
    with open(path, encoding="utf-8") as fh:
        return {row_name(r["model"]): r for r in json.load(fh)["results"]}


def build(whole: dict[str, dict], per_batch: dict[str, dict], commands: list[str], smoke: bool) -> tuple[str, dict]:
    from kodiffcse.evaluation.report import COLUMNS

    order = [r for r in REFERENCE if r in whole] + sorted(set(whole) - set(REFERENCE))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join([":---"] + [":---:"] * (len(COLUMNS) - 1)) + "|"]
    rows = []

    def add(label: str, values: list[float] | None) -> None:
        cells = ["N/A"] * len(KEYS) if values is None else [f"{v:.2f}" for v in values]
        lines.append("| " + " | ".join([label, *cells]) + " |")

    for row in order:
        name = REFERENCE.get(row, (row, None))[0]
        reference = REFERENCE.get(row, (row, None))[1]
        pb, ws = per_batch.get(row), whole[row]
        if reference is not None:
            add(f"{name} (reference, per-batch)", reference)
        if pb is not None:
            add(f"{name} (kodiffcse, per-batch 128)", [pb["scores_x100"][k] for k in KEYS])
        add(f"{name} (kodiffcse, whole set)", [ws["scores_x100"][k] for k in KEYS])
        lines.append("|" + " |" * len(COLUMNS))
        rows.append({
            "row": row, "name": name, "model": ws["model"], "test_file": ws["data"], "test_sha256": ws["data_sha256"],
            "pairs": ws["pairs"], "parameters": ws["parameters"],
            "whole_set_x100": {k: ws["scores_x100"][k] for k in KEYS},
            "per_batch_x100": {k: pb["scores_x100"][k] for k in KEYS} if pb else None,
            "per_batch_protocol": pb["protocol"] if pb else None,
            "reference_per_batch_x100": dict(zip(KEYS, reference)) if reference else None,
        })
    lines.pop()  # no spacer after the last row
    note = ("SMOKE RUN: tiny random-init models trained for a few steps on a synthetic corpus; these numbers test "
            "the pipeline, not the method.\n\n" if smoke else "")
    md = (f"# KorSTS test (x 100)\n\n{note}Per-batch rows use the reference's protocol (correlations per shuffled "
          "batch of 128 pairs, averaged): only they compare with the reference's figures. Whole-set rows are the "
          "standard (sentence-transformers, MTEB) scores.\n\n" + "\n".join(lines) + "\n\n## Commands\n\n```bash\n"
          + "\n".join(commands) + "\n```\n")
    result = {"smoke": smoke, "python": sys.version.split()[0], "platform": platform.platform(), "rows": rows,
              "commands": commands}
    try:
        from importlib.metadata import version

        result["kodiffcse"] = version("kodiffcse")
    except Exception:  # noqa: BLE001 - provenance only
        pass
    return md, result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--whole-set", required=True, help="kodiffcse evaluate --json output, whole-set protocol")
    p.add_argument("--per-batch", help="kodiffcse evaluate --per-batch-average 128 --json output")
    p.add_argument("--commands", help="the commands that produced them, one per line (reproduce.sh's commands.sh)")
    p.add_argument("--out", required=True, help="folder for results.md and results.json")
    p.add_argument("--smoke", action="store_true", help="label the table as a smoke run")
    args = p.parse_args(argv)
    commands = []
    if args.commands:
        with open(args.commands, encoding="utf-8") as fh:
            commands = [line.rstrip("\n") for line in fh if line.strip()]
    md, result = build(load(args.whole_set), load(args.per_batch) if args.per_batch else {}, commands, args.smoke)
    from kodiffcse.atomic import atomic_write

    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "results.md"), md)
    atomic_write(os.path.join(args.out, "results.json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(md)
    print(f"wrote {os.path.join(args.out, 'results.md')} and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
