"""Run by tests/test_ddp.py under torchrun in place of `-m kodiffcse.cli`: the same `kodiffcse.cli.main` with the
same argv, so the CLI builds its own Accelerator, plus a record of what each rank saw.

Writes rank<N>.json: the logits shapes info_nce saw, the process group, and a checksum of every trained
parameter taken when the run ends (Accelerator.end_training, which train() calls on every rank).
"""
from __future__ import annotations

import json
import os
import sys

import torch


def main(out_dir: str, argv: list[str]) -> int:
    import accelerate

    import kodiffcse.losses.infonce as infonce
    from kodiffcse.cli import main as cli_main

    shapes, record = [], {}
    original = infonce.similarity_logits

    def recording(z1, z2, temperature):
        logits, labels = original(z1, z2, temperature)
        shapes.append([list(z1.shape), list(logits.shape), labels.tolist()])
        return logits, labels

    def end_training(self):
        model = self.unwrap_model(self._models[0])
        record.update(
            rank=self.process_index, world=self.num_processes, distributed_type=str(self.distributed_type),
            backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            group_size=torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
            checksums={n: float(p.detach().double().sum()) for n, p in model.named_parameters() if p.requires_grad})
        return real_end(self)

    infonce.similarity_logits = recording
    real_end, accelerate.Accelerator.end_training = accelerate.Accelerator.end_training, end_training
    code = cli_main(argv)
    record["shapes"], record["code"] = shapes, code
    with open(os.path.join(out_dir, f"rank{os.environ['RANK']}.json"), "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
