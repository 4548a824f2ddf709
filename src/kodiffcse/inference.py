"""SentenceEncoder: turn sentences into vectors with any kodiffcse, sentence-transformers or HF encoder.

Encoding sorts by length (little padding), runs in inference mode (autocast on GPU), returns rows in
input order, and puts a model that was training back into train mode afterwards, so a dev evaluation
never switches dropout, the SimCSE augmentation, off for the rest of training. On top of encode sit the
SimCSE library's conveniences: similarity, build_index and search (search.VectorIndex).

On CPU each sorted batch is packed as in training (modeling/packing.py) and, under CLS pooling, the last layer
runs at the CLS rows only (modeling/read_rows.py): 1.13x at klue/roberta-base size (docs/performance.md),
the same vectors. Elsewhere (GPU, other families, the checkpoint's own pooler) batches stay padded.
"""
from __future__ import annotations

import json
import os

import torch

from .errors import UserError, warn
from .modeling.loading import from_pretrained, load_tokenizer, missing_local_path, quiet_transformers
from .modeling.fused_qkv import use_fused_qkv
from .modeling.packing import PackedBatch, packable, position_offset, sentence_vectors, use_varlen_attention
from .modeling.pooling import POOLERS
from .modeling.read_rows import use_read_rows
from .token_ids import longest_first, sentence_token_ids, truncation_message

_ST_POOLING = {"cls": "cls_before_pooler", "mean": "mean"}


def _pooler_from_st(pooling: dict, folder: str) -> str:
    """Read sentence-transformers' pooling config: 'pooling_mode' (v6) or pooling_mode_*_token flags (older)."""
    modes = [pooling["pooling_mode"]] if isinstance(pooling.get("pooling_mode"), str) else [
        key[len("pooling_mode_"):].replace("_tokens", "").replace("_token", "")
        for key, value in pooling.items() if key.startswith("pooling_mode_") and value is True]
    if len(modes) != 1 or modes[0] not in _ST_POOLING:
        raise UserError(f"unsupported sentence-transformers pooling {modes} (kodiffcse reads cls or mean)", path=folder)
    return _ST_POOLING[modes[0]]


def read_sentence_transformers_layout(path: str) -> dict:
    """Pooler, max length and transformer sub-folder of a sentence-transformers model dir ({} otherwise)."""
    modules_file = os.path.join(path, "modules.json")
    if not os.path.isfile(modules_file):
        return {}
    with open(modules_file, encoding="utf-8") as fh:
        modules = json.load(fh)
    info: dict = {"transformer_path": path}
    for module in modules:
        kind = module.get("type", "")
        folder = os.path.join(path, module.get("path", ""))
        if kind.endswith("Transformer"):
            info["transformer_path"] = folder
            config_file = os.path.join(folder, "sentence_bert_config.json")
            if os.path.isfile(config_file):  # older sentence-transformers; v6 keeps it in the tokenizer config
                with open(config_file, encoding="utf-8") as fh:
                    info["max_len"] = json.load(fh).get("max_seq_length")
        elif kind.endswith("Pooling"):
            with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
                pooling = json.load(fh)
            info["pooler"] = _pooler_from_st(pooling, folder)
        elif kind.endswith("Normalize"):
            info["normalized"] = True
        else:
            raise UserError(f"unsupported sentence-transformers module {kind!r}", path=folder)
    return info


def best_model_dir(path: str) -> str:
    """A `kodiffcse train` output dir stands for the best model exported in it; any other path for itself."""
    best = os.path.join(path, "best")
    return best if os.path.isdir(best) and not os.path.isfile(os.path.join(path, "config.json")) else path


class SentenceEncoder:
    """`padding_free` and `cpu_kernels` are the training config's switches (config.ModelConfig): evaluation
    wraps the model being trained, so it must leave off what the run switched off."""

    def __init__(self, model, tokenizer, pooler: str = "cls_before_pooler", max_len: int = 64,
                 prefix: str = "", device: str | torch.device | None = None,
                 padding_free: bool = True, cpu_kernels: bool = True):
        if pooler not in POOLERS:
            raise UserError(f"unknown pooler {pooler!r}; choose one of {', '.join(POOLERS)}")
        self.model, self.tokenizer, self.pooler, self.max_len, self.prefix = model, tokenizer, pooler, max_len, prefix
        if device is not None:
            self.model.to(device)
        self.encode_calls = 0  # encoder forward passes, for tests and benchmarks
        self.name_or_path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
        self.index = None  # a search.VectorIndex once build_index or load_index ran
        self.last_truncated = 0
        self._reported: set[str] = set()
        if cpu_kernels:
            use_fused_qkv(model)  # exact, no new parameters; steps aside on GPUs
        self._packs = self._read_cls = False  # CPU packing (module docstring): poolers of the last layer's tokens
        if padding_free and pooler in ("cls_before_pooler", "mean"):
            use_varlen_attention(model)  # exact on padded calls too; saved configs keep saying sdpa
            self._packs = packable(model)
            self._read_cls = self._packs and pooler == "cls_before_pooler" and use_read_rows(model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str, device: str | None = None, pooler: str | None = None,
                        max_len: int | None = None, prefix: str = "", padding_free: bool = True) -> "SentenceEncoder":
        """Load a kodiffcse output dir, a sentence-transformers dir or a Hugging Face encoder."""
        from transformers import AutoModel

        quiet_transformers()
        path_or_hub_id = best_model_dir(path_or_hub_id)
        if missing_local_path(path_or_hub_id):
            raise UserError("model not found: no such directory", path=path_or_hub_id)  # not a Hub id either
        layout = read_sentence_transformers_layout(path_or_hub_id) if os.path.isdir(path_or_hub_id) else {}
        source = layout.get("transformer_path", path_or_hub_id)
        tokenizer = load_tokenizer(source)
        model = from_pretrained(AutoModel.from_pretrained, source, "model")
        positions = getattr(model.config, "max_position_embeddings", 512) - position_offset(model)
        max_len = max_len or layout.get("max_len") or min(tokenizer.model_max_length or 512, 512, positions)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        encoder = cls(model.eval(), tokenizer, pooler or layout.get("pooler", "cls_before_pooler"),
                      max_len, prefix, device, padding_free)
        encoder.name_or_path = path_or_hub_id
        return encoder

    def encode(self, sentences, batch_size: int = 64, normalize: bool = True, show_progress: bool | None = None,
               convert_to_tensor: bool = False, report_truncated: bool = True):
        """float32 vectors in input order (a numpy array, or a torch tensor on request). Texts cut to max_len are
        counted in last_truncated and, with report_truncated, reported as one line (once per encoder for the same
        numbers)."""
        from tqdm.auto import tqdm

        single = isinstance(sentences, str)
        sentences = [sentences] if single else list(sentences)
        ids, too_long = sentence_token_ids(self.tokenizer, sentences, self.max_len, self.prefix)
        self.last_truncated = too_long  # callers that encode in chunks (the CLI) sum these for one line
        message = truncation_message(too_long, len(ids), self.max_len)
        if too_long and report_truncated and message not in self._reported:
            self._reported.add(message)  # the same texts again (a dev set at every evaluation): said once
            warn(message)
        order = longest_first(ids)
        out = torch.empty(len(ids), self.model.config.hidden_size, dtype=torch.float32)
        was_training = self.model.training
        self.model.eval()
        device = self.device
        # by default a bar only for long inputs, and only on a terminal (in a log its redraws read as blank lines)
        hide = (None if len(ids) > 10 * batch_size else True) if show_progress is None else not show_progress
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                for start in tqdm(range(0, len(ids), batch_size), desc="encoding", disable=hide, unit="batch"):
                    rows = order[start:start + batch_size]
                    batch = self.tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
                    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                    vectors = self._vectors(batch["input_ids"], batch["attention_mask"], packs=device.type == "cpu")
                    self.encode_calls += 1
                    out[torch.as_tensor(rows)] = vectors.float().cpu()
        finally:
            self.model.train(was_training)
        if normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        if single:
            out = out[0]
        return out if convert_to_tensor else out.numpy()

    def _vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, packs: bool) -> torch.Tensor:
        packed = PackedBatch.from_mask(attention_mask) if packs and self._packs else None
        return sentence_vectors(self.model, input_ids, attention_mask, packed, self.pooler, self._read_cls)

    def similarity(self, a, b, batch_size: int = 64):
        """Cosine similarities: a float for two strings, else a (len(a), len(b)) float32 array."""
        single = isinstance(a, str) and isinstance(b, str)
        va = self.encode([a] if isinstance(a, str) else list(a), batch_size=batch_size)
        vb = va if b is a else self.encode([b] if isinstance(b, str) else list(b), batch_size=batch_size)
        scores = va @ vb.T
        return float(scores[0, 0]) if single else scores

    def build_index(self, corpus, batch_size: int = 64, backend: str = "auto", show_progress: bool | None = None):
        """Encode the corpus and keep it searchable (FAISS if installed, exact numpy otherwise)."""
        from .search import VectorIndex

        corpus = [corpus] if isinstance(corpus, str) else list(corpus)
        if not corpus:
            raise UserError("the corpus to index is empty")
        vectors = self.encode(corpus, batch_size=batch_size, normalize=True, show_progress=show_progress)
        meta = {"model": self.name_or_path, **self.fingerprint()}
        self.index = VectorIndex(vectors, corpus, backend=backend, meta=meta)
        return self.index

    def fingerprint(self) -> dict:
        """What decides the vectors, by content: a path says nothing once the dir behind it is replaced, and
        the same model reached by two paths (a run dir and its best/) is still the same model."""
        import hashlib

        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        return {"weights_sha256": digest.hexdigest(), "pooler": self.pooler, "max_len": self.max_len,
                "prefix": self.prefix}

    def load_index(self, path: str, backend: str = "auto"):
        """Reuse an index written by index.save(path) (or `kodiffcse search --index`)."""
        from .search import VectorIndex

        index = VectorIndex.load(path, backend=backend)
        dim = self.model.config.hidden_size
        if index.dim != dim:
            raise UserError(f"the index holds {index.dim}-dimensional vectors, this model makes {dim}", path=path)
        differ = [key.replace("_sha256", "") for key, value in self.fingerprint().items()
                  if index.meta.get(key, "") != value]
        if differ:
            raise UserError(f"the index was built with another model ({', '.join(differ)} differ); rebuild it "
                            "(kodiffcse search --rebuild, or build_index)", path=path)
        self.index = index
        return index

    def search(self, queries, top_k: int = 5, threshold: float | None = None, batch_size: int = 64):
        """(sentence, cosine) pairs, best first: a list for one query string, a list of lists for several."""
        if self.index is None:
            raise UserError("no index: call build_index(corpus) or load_index(path) first")
        single = isinstance(queries, str)
        hits = self.index.search(self.encode([queries] if single else list(queries), batch_size=batch_size), top_k)
        if threshold is not None:
            hits = [[(s, score) for s, score in row if score >= threshold] for row in hits]
        return hits[0] if single else hits
