"""A rough estimate of one training step's peak memory, so that a run too big for a CPU machine says so
before the kernel's OOM killer ends it without a word.

Activations follow Korthikanti et al. (2022, "Reducing Activation Recomputation in Large Transformer Models"):
about (34 h + 5 a s) bytes per token and layer in 16-bit precision, twice that in fp32; gradient checkpointing
keeps one hidden state per token and layer plus one layer's full set. Parameters cost weights, gradients and
two AdamW moments. On the reference recipe at klue/roberta-base size (batch 128, max_len 64, fp32, CPU) it gives
20.0 GiB against 21.0 GiB measured, and 5.8 against 6.5 GiB with gradient checkpointing (benchmarks/rehearsal.py):
a warning's threshold, not an accounting.
"""
from __future__ import annotations



def activation_bytes(config, tokens: int, seq_len: int, checkpointing: bool, bytes_per_value: int = 4) -> int:
    """What the backward pass keeps of `tokens` tokens (padded to `seq_len`) through one encoder stack."""
    h, a, layers = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    per_layer = (34 * h + 5 * a * seq_len) * bytes_per_value // 2 * tokens
    if checkpointing:
        return layers * tokens * h * bytes_per_value + per_layer
    return layers * per_layer


def step_bytes(encoder_config, trained_params: int, frozen_params: int, batch_size: int, max_len: int,
               views: int, discriminator: bool, checkpointing: bool) -> int:
    """Peak bytes of one fp32 step at full length: `views` rows per example through the encoder (2 dropout
    views; 3 for triplets), one more through the discriminator when there is one."""
    tokens = batch_size * max_len
    acts = activation_bytes(encoder_config, views * tokens, max_len, checkpointing)
    if discriminator:
        acts += activation_bytes(encoder_config, tokens, max_len, checkpointing)
    return acts + 16 * trained_params + 4 * frozen_params


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None elsewhere."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def warn_if_too_big(model, encoder_config, frozen_params: int, batch_size: int, max_len: int, views: int,
                    discriminator: bool, checkpointing: bool) -> None:
    """One line before the first step when it would not fit in this machine's available memory (CPU)."""
    from ..errors import warn

    have = available_bytes()
    if have is None:
        return
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    need = step_bytes(encoder_config, trained, frozen_params, batch_size, max_len, views, discriminator, checkpointing)
    if need <= have:
        return
    hint = "lower --batch-size or --max-len"
    if not checkpointing:
        lighter = step_bytes(encoder_config, trained, frozen_params, batch_size, max_len, views, discriminator, True)
        hint = f"--gradient-checkpointing needs about {lighter / 2**30:.1f} GiB; or " + hint
    warn(f"a training step needs about {need / 2**30:.1f} GiB of memory (batch {batch_size} x {max_len} tokens, "
         f"fp32), more than the {have / 2**30:.1f} GiB available, and may be killed: {hint}")
