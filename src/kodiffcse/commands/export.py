"""`kodiffcse export`: ONNX encoders and model cards, optionally pushed to the Hugging Face Hub.

  kodiffcse export onnx --model M --out DIR     encoder + pooling graph that onnxruntime loads
  kodiffcse export card --model M               (re)write M/README.md, the sentence-transformers model card
Both take --push-to-hub REPO_ID (needs network access and `huggingface-cli login` or HF_TOKEN).
"""
from __future__ import annotations

import argparse
import os

from ..errors import UserError


def add_parser(sub):
    parser = sub.add_parser("export", help="export a model: ONNX, or a model card; optionally push to the Hub",
                            description="Export a trained model for use elsewhere.")
    kinds = parser.add_subparsers(dest="export_kind", required=True, metavar="KIND")
    onnx = kinds.add_parser("onnx", help="ONNX encoder (sentence_embedding output) for onnxruntime")
    onnx.add_argument("--model", required=True, help="kodiffcse / sentence-transformers model dir or Hub id")
    onnx.add_argument("--out", required=True, help="folder to write model.onnx, tokenizer and config into")
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset")
    onnx.add_argument("--max-len", type=int, default=None, help="default: the model's")
    onnx.add_argument("--no-check", dest="check", action="store_false",
                      help="skip comparing onnxruntime's vectors with PyTorch's before writing")
    onnx.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    card = kinds.add_parser("card", help="(re)write README.md, the model card, in a kodiffcse model dir")
    card.add_argument("--model", required=True, help="kodiffcse model dir (e.g. OUTPUT_DIR/best)")
    card.add_argument("--model-id", default=None, help="Hub id to show in the usage snippet, e.g. me/kodiffcse")
    card.add_argument("--license", default=None, help="license id for the card metadata, e.g. apache-2.0")
    for p in (onnx, card):
        p.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                       help="upload the folder to this Hugging Face Hub repo (needs network and a token)")
        p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return parser


def push_to_hub(folder: str, repo_id: str, private: bool = False) -> str:
    """Create (if needed) and upload `folder` to a Hub model repo; one-line errors for the usual failures."""
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model",
                                 commit_message="Upload kodiffcse model")
    except Exception as exc:  # network, auth and Hub errors: report, no traceback
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"push to the Hugging Face Hub repo {repo_id} failed: {reason}", path=folder) from None
    return getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}"


def run(args: argparse.Namespace) -> int:
    if args.export_kind == "onnx":
        from ..export.onnx import export_onnx

        if args.max_len is not None and args.max_len < 2:
            raise UserError(f"--max-len must be at least 2, got {args.max_len}")
        folder = export_onnx(args.model, args.out, opset=args.opset, max_len=args.max_len, check=args.check,
                             overwrite=args.overwrite)
        print(f"wrote {os.path.join(folder, 'model.onnx')}" + (" (vectors match PyTorch)" if args.check else ""))
    else:
        from ..export.model_card import write_model_card
        from ..inference import best_model_dir

        if not os.path.isdir(args.model):
            raise UserError("model not found: no such directory", path=args.model)
        folder = best_model_dir(args.model)
        print(f"wrote {write_model_card(folder, model_id=args.model_id or args.push_to_hub, license=args.license)}")
    if args.push_to_hub:
        print(f"pushed to {push_to_hub(folder, args.push_to_hub, args.private)}")
    return 0
