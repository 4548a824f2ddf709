"""`kodiffcse evaluate`: score any model on STS files and print the reference README's table.

The reference's own evaluation command works too (`--path_to_saved_model`, `--test_data`, ...).
"""
from __future__ import annotations

import argparse
import json
import os

from ..config import _str2bool
from ..errors import UserError


def add_parser(sub):
    p = sub.add_parser("evaluate", help="KorSTS-style evaluation of one or more models on one or more files",
                       description="Pearson and Spearman of gold scores against cosine, Euclidean, Manhattan and "
                                   "dot similarity, over the whole set, as sentence-transformers and MTEB compute them.")
    p.add_argument("--model", action="append", default=[], metavar="M",
                   help="kodiffcse output dir, sentence-transformers dir, or Hugging Face encoder (repeatable)")
    p.add_argument("--data", action="append", default=[], metavar="FILE", help="STS file (repeatable)")
    p.add_argument("--format", default=None, choices=("korsts", "tsv3", "klue-json", "csv", "jsonl"),
                   help="force a format (default: detected from extension and header)")
    p.add_argument("--max-score", type=float, default=None, help="gold score maximum (default 5)")
    p.add_argument("--skip-invalid", action="store_true", help="skip and count bad rows instead of stopping")
    p.add_argument("--pooler", default=None, choices=("cls_before_pooler", "cls", "mean"),
                   help="default: the model dir's sentence-transformers pooling, else cls_before_pooler")
    p.add_argument("--prefix", default="", help="text prepended to every sentence (e.g. 'query: ' for E5)")
    p.add_argument("--batch-size", "--batch_size", type=int, default=128)
    p.add_argument("--max-len", "--max_len", type=int, default=None, help="default: the model's own limit")
    p.add_argument("--per-batch-average", type=int, default=None, metavar="B",
                   help="the reference's protocol: correlations per shuffled batch of B pairs, averaged "
                        "(only to compare with its published numbers; not comparable to whole-set scores)")
    p.add_argument("--seed", type=int, default=0, help="shuffling seed for --per-batch-average")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the numbers and their provenance")
    legacy = p.add_argument_group("reference (KoDiffCSE main.py) options, accepted as aliases")
    legacy.add_argument("--path_to_saved_model", default=None, help="the trained model (overrides --model)")
    legacy.add_argument("--path_to_data", default=None)
    legacy.add_argument("--test_data", default=None)
    legacy.add_argument("--generator", "--generator_name", default=None, help="ignored: evaluation needs no generator")
    legacy.add_argument("--train", dest="legacy_train", type=_str2bool, default=False, metavar="BOOL")
    legacy.add_argument("--test", dest="legacy_test", type=_str2bool, default=True, metavar="BOOL")
    return p


def _resolve_saved_model(path: str) -> str:
    """The reference saved `output/best_checkpoint.pt`; kodiffcse's --ckpt alias makes `output/best_checkpoint/`."""
    if os.path.isdir(path):
        return path
    stem = path[:-3] if path.endswith(".pt") else path
    if os.path.isdir(stem):
        return stem
    if os.path.isfile(path):
        raise UserError("this is a reference .pt pickle; kodiffcse loads model dirs (safetensors). Train with "
                        "kodiffcse, or evaluate the base encoder by name", path=path)
    raise UserError("no such model dir", path=path)


def _size_on_disk(name: str) -> int | None:
    """Of the model itself: a run dir counts as its best/, not with its optimizer checkpoints."""
    from ..inference import best_model_dir

    name = best_model_dir(name)
    if os.path.isdir(name):
        return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(name) for f in files)
    try:
        from huggingface_hub import try_to_load_from_cache

        for weights in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(name, weights)
            if isinstance(cached, str):
                return os.path.getsize(cached)
    except Exception:  # noqa: BLE001 - provenance only; never fail an evaluation for it
        pass
    return None


def _labels(models: list[str]) -> list[str]:
    """Folder names where they tell the models apart (`best` twice does not): else the paths as given."""
    short = [os.path.basename(os.path.normpath(m)) if os.path.isdir(m) else m for m in models]
    return [s if short.count(s) == 1 else os.path.normpath(m) for s, m in zip(short, models)]


def run(args: argparse.Namespace) -> int:
    if args.legacy_train:
        raise UserError("--train True: use `kodiffcse train` to train; evaluate only scores models")
    models = list(args.model)
    if args.path_to_saved_model:
        models = [_resolve_saved_model(args.path_to_saved_model)]
    data_files = list(args.data)
    if args.test_data:
        data_files.append(os.path.join(args.path_to_data, args.test_data) if args.path_to_data else args.test_data)
    if not models:
        raise UserError("give at least one --model")
    if not data_files:
        raise UserError("give at least one --data file")
    if args.per_batch_average is not None and args.per_batch_average < 3:
        raise UserError("--per-batch-average needs batches of at least 3 pairs")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")

    from ..data.korsts_download import file_digest
    from ..data.sts import read_sts
    from ..evaluation import evaluate_encoder, markdown_table
    from ..inference import SentenceEncoder

    datasets = [read_sts(f, args.format, args.max_score, args.skip_invalid) for f in data_files]  # fail fast
    for data in datasets:
        if data.skipped:
            print(f"{data.path}: skipped {len(data.skipped)} invalid rows (first: line {data.skipped[0][0]}: "
                  f"{data.skipped[0][1]})")
    rows, records, failures = [], [], []
    for model_name, model_label in zip(models, _labels(models)):
        try:
            encoder = SentenceEncoder.from_pretrained(model_name, device=args.device, pooler=args.pooler,
                                                      max_len=args.max_len, prefix=args.prefix)
        except UserError as exc:  # the other models are still scored, printed and written; one line at the end
            failures.append(str(exc))
            continue
        n_params = sum(p.numel() for p in encoder.model.parameters())
        size = _size_on_disk(model_name)
        for data in datasets:
            scores = evaluate_encoder(encoder, data, args.batch_size, args.per_batch_average, args.seed)
            label = f"{model_label} · {os.path.basename(data.path)}"
            if args.per_batch_average:
                label += f" (per-batch {args.per_batch_average}, not whole-set)"
            rows.append((label, scores))
            records.append({
                "model": model_name, "data": os.path.abspath(data.path), "data_sha256": file_digest(data.path),
                "format": data.format, "pairs": len(data), "skipped_rows": len(data.skipped), "pooler": encoder.pooler,
                "prefix": args.prefix, "max_len": encoder.max_len,
                "protocol": f"per-batch-average {args.per_batch_average} seed {args.seed}" if args.per_batch_average
                else "whole-set", "parameters": n_params, "size_on_disk_bytes": size,
                "scores": scores, "scores_x100": {k: round(100 * v, 2) for k, v in scores.items()},
            })
        print(f"{model_name}: {n_params / 1e6:.1f}M parameters"
              + (f", {size / 2**20:.1f} MiB on disk" if size is not None else ""))
    if rows:
        print()
        print(markdown_table(rows))
    if args.json and records:
        from ..atomic import atomic_write

        try:
            atomic_write(args.json, json.dumps({"results": records}, ensure_ascii=False, indent=2))
        except OSError as exc:
            raise UserError(f"cannot write: {exc.strerror}", path=args.json) from None
        print(f"\nwrote {args.json}")
    if failures:
        raise UserError(failures[0] if len(failures) == 1 else
                        f"{len(failures)} of {len(models)} models could not be loaded; first: {failures[0]}")
    return 0
