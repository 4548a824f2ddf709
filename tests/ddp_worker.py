"""Run by tests/test_ddp.py under `torchrun --nproc_per_node 2`: a few real training steps with gloo on CPU.

Writes rank<N>.json with the logits shapes info_nce saw and a checksum of every trained parameter.
"""
from __future__ import annotations

import json
import os
import sys

import torch


def main(out_dir: str, config_path: str) -> None:
    from accelerate import Accelerator

    import kodiffcse.losses.infonce as infonce
    from kodiffcse.config import TrainConfig
    from kodiffcse.training.loop import train

    shapes = []
    original = infonce.similarity_logits

    def recording(z1, z2, temperature):
        logits, labels = original(z1, z2, temperature)
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
        shapes.append([list(z1.shape), list(logits.shape), labels.tolist(), backend])
        return logits, labels

    infonce.similarity_logits = recording
    cfg = TrainConfig.load(config_path)
    accelerator = Accelerator(cpu=True, log_with=None)
    result = train(cfg, accelerator=accelerator)
    model = accelerator.unwrap_model(accelerator._models[0])
    sums = {name: float(p.detach().double().sum()) for name, p in model.named_parameters() if p.requires_grad}
    record = {"rank": accelerator.process_index, "world": accelerator.num_processes,
              "steps": result.steps, "shapes": shapes, "checksums": sums,
              "best_dir": result.best_dir}
    with open(os.path.join(out_dir, f"rank{accelerator.process_index}.json"), "w", encoding="utf-8") as fh:
        json.dump(record, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
