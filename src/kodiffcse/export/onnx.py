"""ONNX export of a sentence encoder (encoder + pooling in one graph) and an onnxruntime encoder for it.

The graph takes input_ids and attention_mask (batch and sequence dynamic) and returns sentence_embedding
(pooled, not normalised) and last_hidden_state. The folder also holds the tokenizer, the HF config.json and
kodiffcse_onnx.json (pooler, max_len), so OnnxEncoder needs only onnxruntime and transformers' tokenizer.
It is exported with torch.onnx (the dynamo exporter, which needs onnxscript) and written atomically.
"""
from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np

from ..atomic import atomic_dir
from ..errors import UserError
from ..token_ids import longest_first, sentence_token_ids

MODEL_FILE = "model.onnx"
META_FILE = "kodiffcse_onnx.json"


class _Pooled:
    """Built lazily so importing this module never imports torch."""

    @staticmethod
    def make(model, pooler: str):
        import torch

        from ..modeling.pooling import pool

        class Pooled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                out = self.model(input_ids=input_ids, attention_mask=attention_mask)
                vectors = pool(out.last_hidden_state, attention_mask, pooler, getattr(out, "pooler_output", None))
                return vectors, out.last_hidden_state

        return Pooled().eval()


def export_onnx(model_path: str, out_dir: str, opset: int = 18, pooler: str | None = None,
                max_len: int | None = None, check: bool = True, overwrite: bool = False) -> str:
    """Export the model at model_path (any dir SentenceEncoder loads) to out_dir/model.onnx; an earlier
    export there is replaced only with `overwrite`, anything else never."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        if not os.path.isfile(os.path.join(out_dir, META_FILE)):
            raise UserError("output exists and is not an earlier ONNX export; choose a new folder", path=out_dir)
        if not overwrite:
            raise UserError("output exists; pass --overwrite to replace it", path=out_dir)
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise UserError(f"ONNX export needs {exc.name}: pip install 'kodiffcse[onnx]'") from None
    import torch

    from ..inference import SentenceEncoder

    enc = SentenceEncoder.from_pretrained(model_path, device="cpu", pooler=pooler, max_len=max_len)
    wrapper = _Pooled.make(enc.model.float().eval(), enc.pooler)
    sample = enc.tokenizer(["한 소녀가 머리를 빗고 있다.", "남자가 기타를 친다"], padding=True, return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"])
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=2, max=max(enc.max_len, 8))

    with atomic_dir(out_dir) as tmp:
        quiet = logging.getLogger("torch.onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "torchvision is not installed" notes and exporter chatter
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    wrapper, args, input_names=["input_ids", "attention_mask"],
                    output_names=["sentence_embedding", "last_hidden_state"], opset_version=opset, dynamo=True,
                    dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}), external_data=False, verbose=False,
                    report=False)
        finally:
            quiet.setLevel(level)
        program.save(os.path.join(tmp, MODEL_FILE), external_data=False)
        enc.tokenizer.save_pretrained(tmp)
        enc.model.config.save_pretrained(tmp)
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as fh:
            source = os.path.basename(os.path.normpath(model_path)) if os.path.isdir(model_path) else model_path
            json.dump({"pooler": enc.pooler, "max_len": enc.max_len, "source": source, "opset": opset}, fh,
                      indent=2)  # a folder that may be pushed to the Hub: no local path
        if check:
            _check(tmp, enc)
    return out_dir


def _check(folder: str, enc) -> None:
    """Refuse to write a graph whose vectors differ from PyTorch's (cosine below 0.9999)."""
    sentences = ["", "짧은 문장", "한 무리의 남자들이 해변에서 축구를 하고 있다.", "A man plays guitar. " * 4]
    ours = OnnxEncoder(folder).encode(sentences)
    ref = enc.encode(sentences)
    worst = float(np.min(np.sum(ours * ref, axis=1)))
    if worst < 0.9999:
        raise UserError(f"the exported graph disagrees with PyTorch (cosine {worst:.6f} < 0.9999)", path=folder)


class OnnxEncoder:
    """Encode with an exported folder through onnxruntime: same tokenisation, truncation and order as SentenceEncoder."""

    def __init__(self, folder: str, providers: list[str] | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("ONNX inference needs onnxruntime: pip install 'kodiffcse[onnx]'") from None
        from transformers import AutoTokenizer

        if not os.path.isfile(os.path.join(folder, MODEL_FILE)):
            raise UserError(f"not an ONNX export (no {MODEL_FILE})", path=folder)
        with open(os.path.join(folder, META_FILE), encoding="utf-8") as fh:
            meta = json.load(fh)
        self.pooler, self.max_len = meta["pooler"], meta["max_len"]
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
            self.dim = json.load(fh)["hidden_size"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(os.path.join(folder, MODEL_FILE), options,
                                            providers=providers or ["CPUExecutionProvider"])

    def encode(self, sentences, batch_size: int = 64, normalize: bool = True) -> np.ndarray:
        single = isinstance(sentences, str)
        ids, _ = sentence_token_ids(self.tokenizer, [sentences] if single else list(sentences), self.max_len)
        order = longest_first(ids)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            rows = order[start:start + batch_size]
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="np")
            vectors = self.session.run(["sentence_embedding"], {"input_ids": batch["input_ids"].astype(np.int64),
                                       "attention_mask": batch["attention_mask"].astype(np.int64)})[0]
            out[rows] = vectors
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out
