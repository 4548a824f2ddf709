"""`kodiffcse search`: the corpus sentences closest to each query, with an index that can be saved and reused.

--index PATH loads the index at PATH when it exists, and otherwise builds it from --corpus and saves it
there. An index remembers the model by content (weights' hash, pooler, max length, prefix) and the corpus
(path, size, modification time) it was built from, and a mismatch is an error, not silently wrong
neighbours; --rebuild replaces it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import UserError, count
from ._model import add_model_arguments, load_encoder


def add_parser(sub):
    parser = sub.add_parser("search", help="find the corpus sentences closest to a query",
                            description="Semantic search over a text corpus (one sentence a line) with cosine "
                                        "similarity; FAISS when installed (kodiffcse[faiss]), exact numpy otherwise.")
    add_model_arguments(parser)
    parser.add_argument("--corpus", default=None, help="UTF-8 text file, one sentence per line (blank lines skipped)")
    parser.add_argument("--query", action="append", default=[], required=True, help="query sentence (repeatable)")
    parser.add_argument("-k", "--top-k", type=int, default=5, help="results per query")
    parser.add_argument("--index", default=None, metavar="PATH",
                        help="index folder: loaded if it exists, else built from --corpus and saved here")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the --index even if it exists")
    parser.add_argument("--backend", choices=("auto", "faiss", "numpy"), default="auto",
                        help="auto: faiss if importable, else numpy (both exact)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per query")
    return parser


def _corpus_fingerprint(corpus: str) -> dict:
    stat = os.stat(corpus)
    return {"corpus": os.path.abspath(corpus), "corpus_bytes": stat.st_size, "corpus_mtime": int(stat.st_mtime)}


def _load_or_build(args, enc):
    from ..data.corpus import LineCorpus
    from ..search import INDEX_META

    if args.index and os.path.isfile(os.path.join(args.index, INDEX_META)) and not args.rebuild:
        index = enc.load_index(args.index, backend=args.backend)  # refuses an index of another model
        if args.corpus:
            fingerprint = _corpus_fingerprint(args.corpus)
            stale = [k for k in ("corpus", "corpus_bytes", "corpus_mtime") if index.meta.get(k) != fingerprint[k]]
            if stale:
                raise UserError(f"index was built from another or an older corpus ({', '.join(stale)} differ); "
                                "pass --rebuild to rebuild it", path=args.index)
        return index
    if args.index and os.path.exists(args.index) and not os.path.isfile(os.path.join(args.index, INDEX_META)):
        raise UserError("exists and is not a kodiffcse index", path=args.index)
    if not args.corpus:
        raise UserError("--corpus is required to build an index" + (f" (no index at {args.index})" if args.index else ""))
    corpus = LineCorpus(args.corpus)
    sentences = [corpus[i] for i in range(len(corpus))]
    index = enc.build_index(sentences, batch_size=args.batch_size, backend=args.backend, show_progress=None)
    index.meta.update(_corpus_fingerprint(args.corpus))
    if args.index:
        index.save(args.index)
        print(f"saved the index ({count(len(index), 'sentence')}) to {args.index}", file=sys.stderr)
    return index


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise UserError(f"-k/--top-k must be at least 1, got {args.top_k}")
    if args.backend == "faiss":
        from ..search import faiss_available

        if not faiss_available():
            raise UserError("--backend faiss needs faiss: pip install 'kodiffcse[faiss]'")
    enc = load_encoder(args)
    _load_or_build(args, enc)
    results = enc.search(args.query, top_k=args.top_k, batch_size=args.batch_size)
    for query, hits in zip(args.query, results):
        if args.json:
            print(json.dumps({"query": query, "results": [{"sentence": s, "score": round(score, 6)}
                                                          for s, score in hits]}, ensure_ascii=False))
            continue
        print(f"query: {query}")
        for rank, (sentence, score) in enumerate(hits, 1):
            print(f"{rank:>4}. {score:.4f}  {sentence}")
    return 0
