"""`kodiffcse tiny`: a small random-init encoder and generator with a tokenizer counted from your own corpus.

For CPU experiments and for trying the pipeline on real text without downloading klue/*: the encoder and
generator share the tokenizer, so `kodiffcse train --model OUT/encoder --generator OUT/generator` runs as is.
"""
from __future__ import annotations

import argparse
import os

from ..errors import UserError, count


def add_parser(sub):
    parser = sub.add_parser("tiny", help="build a small tokenizer, encoder and generator from your corpus (offline)",
                            description="Count a WordPiece vocabulary from a corpus (one sentence a line) and build a "
                                        "random-init masked-LM encoder and generator that share it.")
    parser.add_argument("--corpus", required=True, help="UTF-8 text file, one sentence per line")
    parser.add_argument("--out", required=True, help="folder for tokenizer/, encoder/ and generator/")
    parser.add_argument("--vocab-size", type=int, default=8000, help="tokens, special ones included")
    parser.add_argument("--layers", type=int, default=4, help="encoder layers")
    parser.add_argument("--generator-layers", type=int, default=2, help="generator layers")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size of both")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (must divide --hidden)")
    parser.add_argument("--arch", choices=("roberta", "bert", "electra", "xlm-roberta"), default="roberta")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    return parser


def run(args: argparse.Namespace) -> int:
    for name in ("layers", "generator_layers", "hidden", "heads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.hidden % args.heads:
        raise UserError(f"--heads {args.heads} must divide --hidden {args.hidden}")
    if args.vocab_size < 16:
        raise UserError(f"--vocab-size must be at least 16, got {args.vocab_size}")
    if os.path.exists(args.out) and not args.overwrite:
        raise UserError("exists; pass --overwrite to replace it", path=args.out)

    from ..data.corpus import LineCorpus
    from ..modeling.loading import quiet_transformers
    from ..tiny import build_models

    quiet_transformers()
    corpus = LineCorpus(args.corpus)
    paths = build_models((corpus[i] for i in range(len(corpus))), args.out, args.vocab_size, args.layers,
                         args.hidden, args.heads, args.generator_layers, args.arch, args.seed)
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(paths["tokenizer"]))  # fewer than asked when the corpus is small
    print(f"built from {args.corpus} ({count(len(corpus), 'sentence')}): a {vocab:,}-token tokenizer, "
          f"a {args.layers}x{args.hidden} {args.arch} encoder and a {args.generator_layers}x{args.hidden} generator")
    print(f"train with: kodiffcse train --model {paths['encoder']} --generator {paths['generator']} "
          f"--train-file {args.corpus} ...")
    return 0
