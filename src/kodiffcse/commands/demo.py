"""`kodiffcse demo`: the whole pipeline offline in a few minutes on a laptop CPU.

It builds a tiny tokenizer, encoder and generator from a built-in generated Korean sample (or from
--data-dir holding KorSTS and a corpus), trains DiffCSE, and prints the reference-style table.
"""
from __future__ import annotations

import argparse
import glob
import os
import tempfile

from ..errors import UserError


def add_parser(sub):
    parser = sub.add_parser("demo", help="offline end-to-end run on a tiny model (no network)")
    parser.add_argument("--data-dir", default=None, help="a folder with KorSTS (sts-dev.tsv, sts-test.tsv) and a "
                        "corpus (*.txt), e.g. ../shared/data; default: the built-in generated sample")
    parser.add_argument("--output-dir", default=None, help="default: a new temporary folder")
    parser.add_argument("--steps", type=int, default=250, help="training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _find(data_dir: str, pattern: str, what: str) -> str:
    hits = sorted(glob.glob(os.path.join(data_dir, "**", pattern), recursive=True))
    if not hits:
        raise UserError(f"no {what} ({pattern}) found under it", path=data_dir)
    return hits[0]


def demo_files(data_dir: str | None, work: str) -> dict[str, str]:
    if data_dir is None:
        from ..data.sample import write_sample

        return write_sample(os.path.join(work, "data"))
    if not os.path.isdir(data_dir):
        raise UserError("no such directory", path=data_dir)
    corpora = [p for p in glob.glob(os.path.join(data_dir, "**", "*.txt"), recursive=True)
               if "sts" not in os.path.basename(p).lower()]
    if not corpora:
        raise UserError("no corpus (*.txt, one sentence per line) found under it", path=data_dir)
    return {"corpus": sorted(corpora)[0], "dev": _find(data_dir, "sts-dev.tsv", "STS dev file"),
            "test": _find(data_dir, "sts-test.tsv", "STS test file")}


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..data.corpus import LineCorpus
    from ..evaluation import evaluate_encoder, markdown_table
    from ..inference import SentenceEncoder
    from ..modeling.loading import quiet_transformers
    from ..data.sts import read_sts
    from ..tiny import build_mlm, build_tokenizer
    from ..training.loop import train

    quiet_transformers()
    work = args.output_dir or tempfile.mkdtemp(prefix="kodiffcse-demo-")
    if os.path.isdir(work) and os.listdir(work):
        raise UserError("output dir exists and is not empty", path=work)
    files = demo_files(args.data_dir, work)
    corpus = LineCorpus(files["corpus"])
    print(f"demo: corpus {files['corpus']} ({len(corpus)} sentences), dev {files['dev']}, test {files['test']}")
    models = os.path.join(work, "models")
    build_tokenizer((corpus[i] for i in range(len(corpus))), os.path.join(models, "tokenizer"), vocab_size=4000)
    build_mlm(os.path.join(models, "tokenizer"), os.path.join(models, "encoder"), layers=4, hidden=128, heads=4,
              seed=args.seed)
    build_mlm(os.path.join(models, "tokenizer"), os.path.join(models, "generator"), layers=2, hidden=128, heads=4,
              seed=args.seed + 1)
    print(f"demo: built a tiny tokenizer, a 4x128 RoBERTa encoder and a 2x128 generator in {models}")

    cfg = TrainConfig()
    cfg.model.model, cfg.model.generator = os.path.join(models, "encoder"), os.path.join(models, "generator")
    # A random-init CLS vector barely depends on the sentence, so a tiny model trained for minutes learns little
    # with CLS pooling; mean pooling learns at once. Real runs keep CLS on a pretrained encoder.
    cfg.model.max_len, cfg.model.masking_ratio, cfg.model.pooler = 32, 0.3, "mean"
    cfg.data.train_file, cfg.data.dev_file = files["corpus"], files["dev"]
    t = cfg.training
    t.output_dir, t.batch_size, t.max_steps, t.eval_steps = os.path.join(work, "run"), args.batch_size, args.steps, 50
    t.epochs = 1000  # --steps decides the length
    t.lr, t.seed, t.log_with, t.eval_batch_size = 1e-3, args.seed, "none", 128
    cfg.data.group_by_length = True
    result = train(cfg)

    test = read_sts(files["test"])
    rows = []
    for label, path in (("tiny RoBERTa, random init (step 0)", cfg.model.model),
                        (f"tiny KoDiffCSE, {result.steps} steps", result.best_dir)):
        enc = SentenceEncoder.from_pretrained(path, device="cpu", max_len=32, pooler="mean")
        rows.append((label, evaluate_encoder(enc, test)))
    print(f"\nKorSTS-style test set: {test.path} ({len(test)} pairs), whole-set correlations x 100, mean pooling\n")
    print(markdown_table(rows))
    print(f"\nmodel: {result.best_dir} (loads with sentence-transformers and transformers)")
    return 0
