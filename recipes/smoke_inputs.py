"""Offline stand-ins for what `recipes/reproduce.sh` downloads, for its --smoke mode.

  python recipes/smoke_inputs.py dump SENTENCES OUT.xml.bz2    a small synthetic kowiki dump (for kodiffcse data wiki)
  python recipes/smoke_inputs.py models SENTENCES DIR          tiny random-init klue/roberta-base, -small, bert-base

The models have klue's tokenizer layout ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, [MASK]=4, vocab.txt read as
BertTokenizer) so the smoke run meets the special ids the real models have; each dir holds an MLM checkpoint, so
bert-base also serves `--generator layers:N`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("dump", "models"))
    p.add_argument("sentences", type=Path, help="Korean sentences, one per line")
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    sentences = args.sentences.read_text(encoding="utf-8").splitlines()
    if args.what == "dump":
        from kodiffcse.data.wiki.synthetic import write_synthetic_dump

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_dump(args.out, 20_000, sentences[:1500])
    else:
        from kodiffcse.modeling.loading import quiet_transformers
        from kodiffcse.tiny import build_klue_tokenizer, build_mlm

        quiet_transformers()
        tok = args.out / "tokenizer"
        build_klue_tokenizer(sentences[:3000], tok, vocab_size=3000)
        for name, arch, layers, seed in (("roberta-base", "roberta", 2, 0), ("roberta-small", "roberta", 1, 1),
                                         ("bert-base", "bert", 2, 2)):
            build_mlm(tok, args.out / name, arch=arch, layers=layers, hidden=64, heads=2, seed=seed)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
