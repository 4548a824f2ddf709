"""`kodiffcse data`: fetch KorSTS and KorNLI, and build the Korean Wikipedia training corpus."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("data", help="fetch KorSTS and KorNLI; build the Korean Wikipedia corpus",
                                   description="Fetch evaluation data and build training data.")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="{korsts,kornli,wiki}")

    k = sub.add_parser("korsts", help="download KorSTS, verify SHA-256, write the reference layout")
    k.add_argument("--out", required=True, type=Path, help="directory for sts-*.tsv, valid_sts.tsv, test_sts.tsv")
    k.add_argument("--from", dest="from_dir", type=Path,
                   help="use local copies of sts-{train,dev,test}.tsv instead of downloading (offline)")
    k.add_argument("--cache", type=Path, help="download cache (default: $KODIFFCSE_CACHE or ~/.cache/kodiffcse)")
    k.add_argument("--no-progress", action="store_true")

    n = sub.add_parser("kornli", help="download KorNLI, verify pinned digests, build supervised-SimCSE triplets")
    n.add_argument("--out", required=True, type=Path,
                   help="directory for the four KorNLI TSVs and train_triplets.tsv (for --objective sup-simcse)")
    n.add_argument("--from", dest="from_dir", type=Path,
                   help="use local copies of snli_1.0_train.ko.tsv, multinli.train.ko.tsv, xnli.dev.ko.tsv and "
                        "xnli.test.ko.tsv instead of downloading (offline)")
    n.add_argument("--cache", type=Path, help="download cache (default: $KODIFFCSE_CACHE or ~/.cache/kodiffcse)")
    n.add_argument("--no-progress", action="store_true")

    w = sub.add_parser("wiki", help="build wiki_corpus.txt (one sentence per line) from a kowiki dump")
    src = w.add_mutually_exclusive_group(required=True)
    src.add_argument("--dump", type=Path, help="kowiki-YYYYMMDD-pages-articles.xml.bz2")
    src.add_argument("--download", action="store_true", help="fetch the latest dump from dumps.wikimedia.org")
    w.add_argument("--dump-dir", type=Path, help="where --download keeps the dump (default: cache)")
    w.add_argument("--out", required=True, type=Path, help="output text file, e.g. wiki_corpus.txt")
    w.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    w.add_argument("--resume", action="store_true", help="continue an interrupted build of the same --out")
    w.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    w.add_argument("--shuffle", action="store_true", help="shuffle the sentences (seeded)")
    w.add_argument("--seed", type=int, default=42)
    w.add_argument("--min-chars", type=int, default=10)
    w.add_argument("--max-chars", type=int, default=500)
    w.add_argument("--min-hangul", type=float, default=0.5, help="minimum share of Hangul syllables")
    w.add_argument("--splitter", default="kiwi", choices=["kiwi", "kss"], help="sentence splitter")
    w.add_argument("--report", type=Path, help="also write the counts as JSON here")
    w.add_argument("--no-progress", action="store_true")
    return parser


def run(args) -> int:
    if args.data_command == "korsts":
        return _korsts(args)
    if args.data_command == "kornli":
        return _kornli(args)
    return _wiki(args)


def _kornli(args) -> int:
    from ..data.kornli_download import LICENCE, fetch_kornli

    written, reports = fetch_kornli(args.out, args.from_dir, cache=args.cache,
                                    progress=False if args.no_progress else None)
    for report in reports:
        print(report)
    for path in written.values():
        print(f"wrote {path}")
    print(LICENCE)
    return 0


def _korsts(args) -> int:
    from ..data.korsts_download import LICENCE, fetch_korsts

    written = fetch_korsts(args.out, args.from_dir, cache=args.cache,
                           progress=False if args.no_progress else None)
    for path in written.values():
        print(f"wrote {path}")
    print(LICENCE)
    return 0


def _wiki(args) -> int:
    import json

    from ..atomic import atomic_write
    from ..errors import UserError
    from ..data.wiki.build import BuildOptions, build_corpus, format_report
    from ..data.wiki.filters import FilterOptions
    from ..data.wiki.split import check_splitter

    check_splitter(args.splitter, "mwparserfromhell")
    if args.out.is_file() and not (args.overwrite or args.resume):
        raise UserError("output exists; pass --overwrite to replace it", path=str(args.out))
    if args.workers < 0:
        raise UserError("--workers must be 0 (all cores) or more")
    if not 0.0 <= args.min_hangul <= 1.0:
        raise UserError("--min-hangul must be between 0 and 1")
    if args.min_chars < 1 or args.max_chars < args.min_chars:
        raise UserError("need 1 <= --min-chars <= --max-chars")
    progress = False if args.no_progress else None
    dump = args.dump
    if args.download:
        from ..data.wiki.download import download_latest

        dump = download_latest(args.dump_dir, progress=progress)
    options = BuildOptions(
        filters=FilterOptions(args.min_chars, args.max_chars, args.min_hangul),
        splitter=args.splitter, workers=args.workers, shuffle=args.shuffle, seed=args.seed,
    )
    report = build_corpus(dump, args.out, options, resume=args.resume, progress=progress)
    print(format_report(report))
    print(f"wrote {args.out}")
    print("Text from Korean Wikipedia is licensed CC BY-SA 4.0; attribute \"Wikipedia contributors\" "
          "(https://ko.wikipedia.org) when you share the corpus.")
    if args.report:
        try:
            atomic_write(args.report, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write report: {exc.strerror}", path=str(args.report)) from None
    return 0
