"""Figures for the Wikipedia corpus build (not a test).

  python benchmarks/wiki_build.py split   # sentence splitters: accuracy and sentences/s
  python benchmarks/wiki_build.py dump    # dump processing: MB/s of compressed input

`split` joins the gold sentences of ../shared/data/corpus/ko-sentences.txt into paragraphs of
3-7 sentences and scores each splitter on boundary precision/recall/F1 and exact sentences.
`dump` generates a synthetic Korean dump (>= 50 MB bz2 by default), times a parse-only pass over
all of it and the full build (clean, split, filter, dedup, write) over its first --pages pages.
Both print a table and a JSON line.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

from report import emit, machine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
CORPUS = SHARED / "data" / "corpus" / "ko-sentences.txt"


def make_paragraphs(sentences: list[str], seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(sentences):
        k = rng.randint(3, 7)
        out.append(sentences[i : i + k])
        i += k
    return out


def boundaries(paragraph: str, sentences: list[str]) -> set[int] | None:
    """Character offsets where sentences end, except the last; None when a sentence cannot be located."""
    ends, cursor = set(), 0
    for s in sentences:
        at = paragraph.find(s, cursor)
        if at < 0:
            return None
        cursor = at + len(s)
        ends.add(cursor)
    ends.discard(len(paragraph.rstrip()))
    ends.discard(cursor)
    return ends


def score_splitter(name: str, groups: list[list[str]], batch: int = 64) -> dict:
    from kodiffcse.data.wiki.split import make_splitter, split_all

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splitter = make_splitter(name)
        splitter.split_many(["준비 운동입니다. 시작합니다."])  # load models outside the timing
    paragraphs = [" ".join(g) for g in groups]
    n_gold = sum(len(g) for g in groups)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = list(split_all(splitter, paragraphs, batch))
    elapsed = time.perf_counter() - start
    tp = fp = fn = exact = perfect = 0
    for para, gold, pred in zip(paragraphs, groups, predicted):
        g, p = boundaries(para, gold), boundaries(para, pred) or set()
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
        exact += len(set(gold) & set(pred))
        perfect += gold == pred
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    return {
        "splitter": name,
        "paragraphs": len(paragraphs),
        "gold_sentences": n_gold,
        "predicted_sentences": sum(len(p) for p in predicted),
        "boundary_precision": round(precision, 4),
        "boundary_recall": round(recall, 4),
        "boundary_f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "exact_sentences": round(exact / n_gold, 4),
        "perfect_paragraphs": round(perfect / len(paragraphs), 4),
        "seconds": round(elapsed, 2),
        "sentences_per_s": round(n_gold / elapsed, 1),
    }


def cmd_split(args) -> dict:
    if not CORPUS.exists():
        sys.exit(f"skipped: {CORPUS} is absent (needs ../shared beside the repo)")
    sentences = [s for s in CORPUS.read_text(encoding="utf-8").split("\n") if s.strip()]
    rows = []
    for spec in args.splitters:
        name, _, limit = spec.partition(":")
        sub = sentences[: int(limit)] if limit else sentences[: args.limit or None]
        rows.append(score_splitter(name, make_paragraphs(sub)))
        print(f"  done {name}", file=sys.stderr)
    cols = ["splitter", "gold_sentences", "boundary_precision", "boundary_recall", "boundary_f1",
            "exact_sentences", "perfect_paragraphs", "sentences_per_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    result = {"benchmark": "split", "machine": machine(), "rows": rows}
    emit(result, args.json_out)
    return result


def cmd_dump(args) -> dict:
    """Parse-only pass over the whole dump, then the ordinary full build of a dump of its first --pages pages.

    Full builds of a 50 MB dump take long on few cores; the first N pages are written to a dump of their own
    (untimed), whose compressed size is what the build consumes.
    """
    from kodiffcse.data.wiki.build import BuildOptions, build_corpus
    from kodiffcse.data.wiki.dump import iter_pages
    from kodiffcse.data.wiki.synthetic import write_dump, write_synthetic_dump

    dump = Path(args.dump)
    if not dump.exists():
        t0 = time.perf_counter()
        sentences = None
        if CORPUS.exists():
            sentences = [s for s in CORPUS.read_text(encoding="utf-8").split("\n") if s.strip()]
        dump.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_dump(dump, target_bytes=int(args.mb * 1e6), sentences=sentences, seed=0)
        print(f"  generated {dump.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    size_mb = dump.stat().st_size / 1e6

    t0 = time.perf_counter()
    total_pages = sum(1 for _ in iter_pages(dump))
    parse_s = time.perf_counter() - t0

    pages = min(args.pages, total_pages) if args.pages else total_pages
    workers = args.workers or os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        source = dump
        if pages < total_pages:
            source = write_dump(Path(tmp) / "first-pages.xml.bz2", (
                {"title": p.title, "text": p.text, "ns": p.ns, "redirect": p.title if p.redirect else None}
                for p in itertools.islice(iter_pages(dump), pages)))
        t0 = time.perf_counter()
        report = build_corpus(source, Path(tmp) / "wiki_corpus.txt", BuildOptions(workers=workers), progress=False)
        build_s = time.perf_counter() - t0
        consumed_mb = source.stat().st_size / 1e6
    kept = report["kept"]
    row = {
        "dump_mb": round(size_mb, 1),
        "dump_pages": total_pages,
        "parse_only_mb_per_s": round(size_mb / parse_s, 2),
        "build_pages": pages,
        "workers": workers,
        "build_seconds": round(build_s, 1),
        "build_mb_per_s": round(consumed_mb / build_s, 4),
        "build_pages_per_s": round(pages / build_s, 1),
        "sentences_kept": kept,
        "est_hours_for_1gb_dump": round(1000 / (consumed_mb / build_s) / 3600, 1),
    }
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
    result = {"benchmark": "dump", "machine": machine(), "load_avg_1m": os.getloadavg()[0], **row}
    emit(result, args.json_out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("split", help="splitter accuracy and speed")
    s.add_argument("--splitters", nargs="+", default=["kiwi", "kss-fast", "kss-punct", "kss-pecab:600"],
                   help="names, each optionally NAME:N to use the first N sentences only (pecab is slow)")
    s.add_argument("--limit", type=int, default=0, help="sentences per splitter (0: all)")
    d = sub.add_parser("dump", help="dump processing throughput")
    d.add_argument("--mb", type=float, default=50.0, help="size of the generated bz2 dump")
    d.add_argument("--dump", default=str(Path(tempfile.gettempdir()) / "kodiffcse-bench" / "kowiki-bench.xml.bz2"),
                   help="dump to time; generated here first if absent (kept for re-runs)")
    d.add_argument("--pages", type=int, default=5000, help="pages for the full build (0: all)")
    d.add_argument("--workers", type=int, default=0, help="0: all cores")
    for command in (s, d):
        command.add_argument("--json", dest="json_out", help="also write the result to this file")
    args = parser.parse_args()
    cmd_split(args) if args.what == "split" else cmd_dump(args)


if __name__ == "__main__":
    main()
