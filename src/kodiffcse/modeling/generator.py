"""The frozen masked-LM generator that edits masked sentences for the discriminator.

Frozen means no gradients, eval mode and inference mode. Its vocabulary must equal the encoder
tokenizer's: the official repo failed with an opaque runtime error when RoBERTa met a distilbert generator.
Only the masked positions go through the vocabulary-sized MLM head, which is most of a small
generator's cost.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .loading import from_pretrained, load_config
from .fused_qkv import use_fused_qkv
from .packing import PackedBatch, packable, token_states, use_varlen_attention
from .read_rows import use_read_rows


def _base_and_head(mlm: nn.Module):
    """Split an MLM into (base model, head) so the head runs on chosen positions only; None if unknown."""
    base = getattr(mlm, "base_model", None)
    for attr in ("lm_head", "cls"):
        head = getattr(mlm, attr, None)
        if isinstance(head, nn.Module):
            return base, head
    if hasattr(mlm, "generator_predictions") and hasattr(mlm, "generator_lm_head"):  # ELECTRA generator
        return base, nn.Sequential(mlm.generator_predictions, mlm.generator_lm_head)
    return None


class FrozenGenerator:
    """Not an nn.Module on purpose: it is never part of the trained model, its optimizer or DDP.
    `cpu_kernels` as the trained model's (DiffCSEModel): one q/k/v product and, on a packed row, the packed
    self-attention; in eval mode nothing else of them applies."""

    def __init__(self, mlm: nn.Module, sampling: bool = False, cpu_kernels: bool = True):
        self.model = mlm.eval().requires_grad_(False)
        self.sampling = sampling
        self._split = _base_and_head(mlm)
        use_varlen_attention(mlm)
        if cpu_kernels:
            use_fused_qkv(mlm)
        self.packable = packable(mlm.base_model)
        # the MLM head reads the masked positions only: the last layer runs there only (read_rows.py)
        self.read_masked_only = self.packable and self._split is not None and use_read_rows(self._split[0])

    def to(self, device) -> "FrozenGenerator":
        self.model.to(device)
        return self

    @torch.inference_mode()
    def _predict(self, masked_ids, attention_mask, chosen, packed):
        packed = packed if self.packable else None
        device_type = masked_ids.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda"):
            if self._split is not None:
                base, head = self._split
                if packed is None:
                    logits = head(token_states(base, masked_ids, attention_mask, None)[chosen])
                elif self.read_masked_only:
                    rows = packed.pack(chosen).nonzero().squeeze(1)
                    logits = head(token_states(base, masked_ids, attention_mask, packed, rows))
                else:
                    logits = head(token_states(base, masked_ids, attention_mask, packed)[packed.pack(chosen)])
            elif packed is not None:
                logits = self.model(**packed.model_inputs(self.model.base_model, masked_ids)).logits[0][packed.pack(chosen)]
            else:
                logits = self.model(input_ids=masked_ids, attention_mask=attention_mask).logits[chosen]
        logits = logits.float()
        if self.sampling:
            return torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(-1)
        return logits.argmax(-1)

    def fill(self, masked_ids: torch.Tensor, attention_mask: torch.Tensor, chosen: torch.Tensor,
             packed: PackedBatch | None = None) -> torch.Tensor:
        """Token ids for the chosen positions (a 1-D tensor in row-major order), usable by autograd code.
        With `packed` the generator reads the batch's real tokens only (packing.py)."""
        return self._predict(masked_ids, attention_mask, chosen, packed).clone()


def check_vocabulary(tokenizer, generator_name: str, generator_config, generator_tokenizer=None) -> None:
    """Refuse a generator that does not share the encoder tokenizer's vocabulary."""
    if generator_tokenizer is not None and generator_tokenizer.get_vocab() != tokenizer.get_vocab():
        enc_vocab, gen_vocab = tokenizer.get_vocab(), generator_tokenizer.get_vocab()
        differ = sorted(set(enc_vocab.items()) ^ set(gen_vocab.items()), key=lambda kv: kv[1])[:3]
        raise UserError(
            f"vocabulary mismatch: the generator's tokenizer ({len(gen_vocab)} tokens) differs from the encoder's "
            f"({len(enc_vocab)} tokens), e.g. {differ}; use a generator trained with the encoder's tokenizer "
            "or --generator layers:N", path=generator_name)
    if generator_config.vocab_size < len(tokenizer):
        raise UserError(
            f"vocabulary mismatch: the generator has {generator_config.vocab_size} output tokens, the encoder's "
            f"tokenizer {len(tokenizer)}", path=generator_name)


def load_generator(spec: str, encoder_name: str, tokenizer, sampling: bool = False,
                   cpu_kernels: bool = True) -> FrozenGenerator:
    """`spec` is a name/dir, or 'layers:N' to keep the first N layers of the encoder's own MLM checkpoint."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    if spec.startswith("layers:"):
        try:
            n_layers = int(spec.split(":", 1)[1])
        except ValueError:
            raise UserError(f"--generator {spec!r}: expected layers:N with N a whole number") from None
        config = load_config(encoder_name)
        if not 1 <= n_layers <= config.num_hidden_layers:
            raise UserError(f"--generator {spec}: N must be between 1 and {config.num_hidden_layers}")
        mlm, info = from_pretrained(AutoModelForMaskedLM.from_pretrained, encoder_name, "generator",
                                    output_loading_info=True)
        head_missing = sorted(info.get("missing_keys", []))
        if head_missing:
            raise UserError("--generator layers:N needs an encoder checkpoint with its MLM head, but "
                            f"{len(head_missing)} head weights are missing (e.g. {head_missing[0]})", path=encoder_name)
        layers = mlm.base_model.encoder.layer
        mlm.base_model.encoder.layer = nn.ModuleList(list(layers)[:n_layers])
        mlm.config.num_hidden_layers = n_layers
        return FrozenGenerator(mlm, sampling, cpu_kernels)

    config = load_config(spec)
    try:
        gen_tokenizer = from_pretrained(AutoTokenizer.from_pretrained, spec, "generator tokenizer")
    except UserError:
        gen_tokenizer = None  # a checkpoint without tokenizer files: compare sizes only
    check_vocabulary(tokenizer, spec, config, gen_tokenizer)
    mlm = from_pretrained(AutoModelForMaskedLM.from_pretrained, spec, "generator")
    return FrozenGenerator(mlm, sampling, cpu_kernels)
