"""Encoding throughput (figures, not a test): SentenceEncoder.encode against SentenceTransformer.encode.

  python benchmarks/encode.py [--layers 6 --hidden 384] [--repeats 3] [--onnx] [--json OUT]

SentenceEncoder packs its sorted batches on CPU; a second row times it on padded batches, as on GPU.
Both encode every KorSTS test sentence (../shared/data/korsts/sts-test.tsv, both columns) with the same
model dir: a randomly initialised RoBERTa (weights do not change the speed) with a WordPiece tokenizer
trained on KorSTS train, saved by kodiffcse's own exporter, max length 64, batch 64, normalised vectors.
Each side is warmed up once, then timed `--repeats` times, alternating, and the best run counts (the
machine is shared, so the best run is the least disturbed one). Prints a table and a JSON line.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from report import emit, machine

REPO = Path(__file__).resolve().parents[1]
KORSTS = REPO / ".." / "shared" / "data" / "korsts"


def build_model(work: str, layers: int, hidden: int, max_len: int) -> str:
    from transformers import AutoModel, AutoTokenizer

    from kodiffcse.data.sts import read_sts
    from kodiffcse.export.sentence_transformers import save_sentence_model
    from kodiffcse.tiny import build_mlm, build_tokenizer

    train = read_sts(KORSTS / "sts-train.tsv")
    build_tokenizer(train.sentences1 + train.sentences2, os.path.join(work, "tok"), vocab_size=8000)
    build_mlm(os.path.join(work, "tok"), os.path.join(work, "mlm"), layers=layers, hidden=hidden,
              heads=max(hidden // 64, 1), seed=0)
    out = os.path.join(work, "model")
    save_sentence_model(AutoModel.from_pretrained(os.path.join(work, "mlm")),
                        AutoTokenizer.from_pretrained(os.path.join(work, "mlm")), out, "cls_before_pooler", max_len)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onnx", action="store_true", help="also time the onnxruntime encoder of an ONNX export")
    parser.add_argument("--json", dest="json_out", help="also write the result to this file")
    args = parser.parse_args()
    if not (KORSTS / "sts-test.tsv").exists():
        print(f"KorSTS not found at {KORSTS}", file=sys.stderr)
        return 1

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from kodiffcse import SentenceEncoder
    from kodiffcse.data.sts import read_sts
    from kodiffcse.modeling.loading import quiet_transformers

    quiet_transformers()
    warnings.simplefilter("ignore")
    test = read_sts(KORSTS / "sts-test.tsv")
    sentences = test.sentences1 + test.sentences2
    work = tempfile.mkdtemp(prefix="kodiffcse-bench-encode-")
    model = build_model(work, args.layers, args.hidden, args.max_len)
    ours = SentenceEncoder.from_pretrained(model, device="cpu")
    padded = SentenceEncoder.from_pretrained(model, device="cpu", padding_free=False)  # as on GPU: the packing's gain
    st = SentenceTransformer(model, device="cpu")
    runners = {
        "SentenceEncoder.encode": lambda: ours.encode(sentences, batch_size=args.batch_size, show_progress=False),
        "SentenceEncoder.encode, padded batches": lambda: padded.encode(sentences, batch_size=args.batch_size,
                                                                        show_progress=False),
        "SentenceTransformer.encode": lambda: st.encode(sentences, batch_size=args.batch_size,
                                                        normalize_embeddings=True, show_progress_bar=False),
    }
    if args.onnx:
        from kodiffcse.export.onnx import OnnxEncoder, export_onnx

        onnx = OnnxEncoder(export_onnx(model, os.path.join(work, "onnx")))
        runners["OnnxEncoder.encode (onnxruntime)"] = lambda: onnx.encode(sentences, batch_size=args.batch_size)
    vectors = {name: run() for name, run in runners.items()}  # warm-up, and the agreement check
    best = {name: float("inf") for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    ref = vectors["SentenceEncoder.encode"]
    rows = []
    for name in runners:
        rows.append({"encoder": name, "seconds": round(best[name], 3),
                     "sentences_per_s": round(len(sentences) / best[name], 1),
                     "speedup_vs_sentence_transformers": round(best["SentenceTransformer.encode"] / best[name], 3),
                     "min_cosine_vs_sentence_encoder": round(float(np.sum(vectors[name] * ref, 1).min()), 6)})
    setup = {"sentences": len(sentences), "model": f"RoBERTa {args.layers}x{args.hidden} (random init)",
             "max_len": args.max_len, "batch_size": args.batch_size, "repeats": args.repeats,
             "torch_threads": torch.get_num_threads(), "machine": machine(),
             "torch": torch.__version__}
    print(f"{len(sentences)} KorSTS test sentences, {setup['model']}, max_len {args.max_len}, batch "
          f"{args.batch_size}, {setup['torch_threads']} CPU threads, best of {args.repeats}\n")
    print("| encoder | s | sentences/s | × SentenceTransformer | min cosine vs SentenceEncoder |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['encoder']} | {r['seconds']:.2f} | {r['sentences_per_s']:.0f} | "
              f"{r['speedup_vs_sentence_transformers']:.2f} | {r['min_cosine_vs_sentence_encoder']:.6f} |")
    emit({"benchmark": "encode", "setup": setup, "results": rows}, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
