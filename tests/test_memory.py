"""The memory estimate behind the too-big warning: against the full-size rehearsal's measured peaks, and the
warning itself as a user meets it."""
from __future__ import annotations

import pytest

from conftest import train_argv
from kodiffcse.cli import main
from kodiffcse.training import memory


def klue_roberta_base():
    from transformers import RobertaConfig

    return RobertaConfig(vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)


@pytest.mark.parametrize("checkpointing, measured_gib", [(False, 21.0), (True, 6.5)])
def test_estimate_is_near_the_rehearsals_measured_peak(checkpointing, measured_gib):
    """benchmarks/rehearsal.py at klue/roberta-base size on CPU (docs/performance.md): peak RSS of the training
    process, 21.0 GiB by default (killed by the OOM killer on a 24 GiB machine), 6.5 GiB with checkpointing."""
    trained = 2 * 110_618_112 + 768 * 768 + 768 + 2 * 769  # encoder, discriminator, MLP, RTD head
    need = memory.step_bytes(klue_roberta_base(), trained, 68_095_232, 128, 64, 2, True, checkpointing) / 2**30
    assert 0.8 * measured_gib <= need <= 1.1 * measured_gib, need


def test_a_step_too_big_for_the_machine_is_one_warning_and_the_run_goes_on(tiny, sample, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)  # a machine with 1 MiB available
    assert main(train_argv(tiny, sample, tmp_path / "run", max_steps=1, batch_size=8)) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "GiB of memory" in line]
    assert len(lines) == 1 and "more than the 0.0 GiB available" in lines[0]
    assert "--gradient-checkpointing needs about" in lines[0]

    monkeypatch.setattr(memory, "available_bytes", lambda: 2**40)
    assert main(train_argv(tiny, sample, tmp_path / "run2", max_steps=1, batch_size=8)) == 0
    assert "GiB of memory" not in capsys.readouterr().err
