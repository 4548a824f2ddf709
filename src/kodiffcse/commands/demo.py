"""`kodiffcse demo`: the whole pipeline offline in a few minutes on a laptop CPU.

It builds a tiny tokenizer, encoder and generator from a built-in generated Korean sample (or from
--data-dir holding KorSTS and a corpus), trains DiffCSE, and prints the reference-style table. The sample's
vocabulary covers only the sample: for models that read ordinary Korean, see `kodiffcse tiny`.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile

from ..errors import UserError, count


def add_parser(sub):
    parser = sub.add_parser("demo", help="offline end-to-end run on a tiny model (no network)")
    parser.add_argument("--data-dir", default=None, help="a folder with KorSTS (sts-dev.tsv, sts-test.tsv) and one "
                        "corpus (*.txt), e.g. ../shared/data; default: the built-in generated sample")
    parser.add_argument("--corpus", default=None, help="the corpus (one sentence a line), when --data-dir holds "
                        "several *.txt files or none")
    parser.add_argument("--output-dir", default=None, help="keep the models and the run here (default: a temporary "
                        "folder, deleted at the end)")
    parser.add_argument("--steps", type=int, default=250, help="training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _find(data_dir: str, pattern: str, what: str) -> str:
    hits = sorted(glob.glob(os.path.join(data_dir, "**", pattern), recursive=True))
    if not hits:
        raise UserError(f"no {what} ({pattern}) found under it", path=data_dir)
    return hits[0]


def demo_files(data_dir: str | None, corpus: str | None, work: str) -> dict[str, str]:
    """The corpus and STS files, found before anything is built: several candidate corpora are refused."""
    if data_dir is None:
        if corpus is not None:
            raise UserError("--corpus needs --data-dir (the folder with sts-dev.tsv and sts-test.tsv)")
        from ..data.sample import write_sample

        return write_sample(os.path.join(work, "data"))
    if not os.path.isdir(data_dir):
        raise UserError("no such directory", path=data_dir)
    if corpus is None:
        corpora = sorted(p for p in glob.glob(os.path.join(data_dir, "**", "*.txt"), recursive=True)
                         if "sts" not in os.path.basename(p).lower())
        if not corpora:
            raise UserError("no corpus (*.txt, one sentence per line) found under it; name one with --corpus",
                            path=data_dir)
        if len(corpora) > 1:
            names = ", ".join(os.path.relpath(p, data_dir) for p in corpora[:4]) + (", ..." if len(corpora) > 4 else "")
            raise UserError(f"{len(corpora)} possible corpora ({names}); name one with --corpus", path=data_dir)
        corpus = corpora[0]
    return {"corpus": corpus, "dev": _find(data_dir, "sts-dev.tsv", "STS dev file"),
            "test": _find(data_dir, "sts-test.tsv", "STS test file")}


def run(args: argparse.Namespace) -> int:
    from ..modeling.loading import quiet_transformers

    quiet_transformers()
    if args.output_dir and os.path.isdir(args.output_dir) and os.listdir(args.output_dir):
        raise UserError("output dir exists and is not empty", path=args.output_dir)
    work = args.output_dir or tempfile.mkdtemp(prefix="kodiffcse-demo-")
    try:
        return _demo(args, work)
    finally:
        if not args.output_dir:
            shutil.rmtree(work, ignore_errors=True)  # about 50 MB of models and checkpoints


def _demo(args: argparse.Namespace, work: str) -> int:
    from ..config import TrainConfig
    from ..data.corpus import LineCorpus
    from ..data.sts import read_sts
    from ..evaluation import evaluate_encoder, markdown_table
    from ..inference import SentenceEncoder
    from ..tiny import build_models
    from ..training.loop import train

    files = demo_files(args.data_dir, args.corpus, work)
    corpus = LineCorpus(files["corpus"])
    if len(corpus) < args.batch_size:
        raise UserError(f"the corpus has {count(len(corpus), 'sentence')}, fewer than one batch of "
                        f"{args.batch_size}", path=files["corpus"])
    print(f"demo: corpus {files['corpus']} ({count(len(corpus), 'sentence')}), dev {files['dev']}, "
          f"test {files['test']}")
    models = build_models((corpus[i] for i in range(len(corpus))), os.path.join(work, "models"), vocab_size=4000,
                          layers=4, hidden=128, heads=4, generator_layers=2, seed=args.seed)
    print(f"demo: built a tiny tokenizer, a 4x128 RoBERTa encoder and a 2x128 generator in "
          f"{os.path.dirname(models['encoder'])}")

    cfg = TrainConfig()
    cfg.model.model, cfg.model.generator = models["encoder"], models["generator"]
    # A random-init CLS vector barely depends on the sentence, so a tiny model trained for minutes learns little
    # with CLS pooling; mean pooling learns at once. Real runs keep CLS on a pretrained encoder.
    cfg.model.max_len, cfg.model.masking_ratio, cfg.model.pooler = 32, 0.3, "mean"
    cfg.data.train_file, cfg.data.dev_file = files["corpus"], files["dev"]
    t = cfg.training
    t.output_dir, t.batch_size, t.max_steps, t.eval_steps = os.path.join(work, "run"), args.batch_size, args.steps, 50
    t.epochs = 1000  # --steps decides the length
    t.lr, t.seed, t.log_with, t.eval_batch_size = 1e-3, args.seed, "none", 128
    result = train(cfg)

    test = read_sts(files["test"])
    rows = []
    for label, path in (("tiny RoBERTa, random init (step 0)", cfg.model.model),
                        (f"tiny KoDiffCSE, {result.steps} steps", result.best_dir)):
        enc = SentenceEncoder.from_pretrained(path, device="cpu", max_len=32, pooler="mean")
        rows.append((label, evaluate_encoder(enc, test)))
    print(f"\nKorSTS-style test set: {test.path} ({len(test)} pairs), whole-set correlations x 100, mean pooling\n")
    print(markdown_table(rows))
    if args.output_dir:
        print(f"\nmodel: {result.best_dir} (loads with sentence-transformers and transformers)")
    else:
        print("\nthe models and the run were in a temporary folder, now deleted; pass --output-dir DIR to keep them")
    return 0
