"""Options and loading shared by the commands that use a trained model (encode, similarity, search)."""
from __future__ import annotations

import argparse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, metavar="PATH_OR_ID",
                       help="kodiffcse model dir (or a train output dir holding best/), sentence-transformers dir, "
                            "or Hugging Face encoder id")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    group.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass")
    group.add_argument("--max-len", type=int, default=None, help="truncate longer texts (default: the model's)")
    group.add_argument("--pooler", default=None, choices=("cls_before_pooler", "cls", "mean"),
                       help="default: the pooling saved with the model (CLS for kodiffcse models)")


def load_encoder(args: argparse.Namespace):
    from ..errors import UserError
    from ..inference import SentenceEncoder

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_len is not None and args.max_len < 2:
        raise UserError(f"--max-len must be at least 2, got {args.max_len}")
    return SentenceEncoder.from_pretrained(args.model, device=args.device, pooler=args.pooler, max_len=args.max_len)
