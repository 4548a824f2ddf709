"""`kodiffcse similarity`: cosine similarity of two sentences (or a matrix for more)."""
from __future__ import annotations

import argparse
import json

from ..errors import UserError
from ._model import add_model_arguments, load_encoder


def add_parser(sub):
    parser = sub.add_parser("similarity", help="cosine similarity between sentences",
                            description="Print the cosine similarity of two sentences, or the matrix of all pairs "
                                        "when more are given.")
    add_model_arguments(parser)
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="two or more sentences")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def run(args: argparse.Namespace) -> int:
    if len(args.sentences) < 2:
        raise UserError(f"give at least two sentences to compare, got {len(args.sentences)}")
    enc = load_encoder(args)
    scores = enc.similarity(args.sentences, args.sentences, batch_size=args.batch_size)
    if len(args.sentences) == 2:
        value = float(scores[0, 1])
        print(json.dumps({"similarity": value}) if args.json else f"{value:.4f}")
        return 0
    if args.json:
        print(json.dumps({"sentences": args.sentences, "similarity": scores.round(6).tolist()}, ensure_ascii=False))
        return 0
    for i, sentence in enumerate(args.sentences):
        print(f"[{i}] {sentence}")
    n = len(args.sentences)
    print("     " + " ".join(f"{f'[{j}]':>7}" for j in range(n)))
    for i in range(n):
        print(f"{f'[{i}]':>4} " + " ".join(f"{scores[i, j]:7.4f}" for j in range(n)))
    return 0
