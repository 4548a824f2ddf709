"""SimCSE's InfoNCE with negatives gathered from every process.

Each process scores its B first-view vectors against all world_size x B second-view vectors; the local
shard keeps its gradient (the gathered copies from other ranks are constants, as in SimCSE).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_local_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All rows from all processes, this process's rows still attached to the graph; returns (rows, offset)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    rank = dist.get_rank()
    parts[rank] = x
    return torch.cat(parts, dim=0), rank * x.shape[0]


def similarity_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, world x B) cosine logits / temperature and the positives' column indices."""
    all_z2, offset = gather_with_local_grad(F.normalize(z2.float(), dim=-1))
    # Unit rows times their transpose: one (B, world x B) product. F.cosine_similarity on broadcast rows
    # builds a (B, world x B, width) tensor instead: 14 ms of a CPU step at B = 64, and 400 MB at B = 128
    # on 8 GPUs at width 768.
    logits = F.normalize(z1.float(), dim=-1) @ all_z2.T / temperature
    labels = torch.arange(z1.shape[0], device=z1.device) + offset
    return logits, labels


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    logits, labels = similarity_logits(z1, z2, temperature)
    return F.cross_entropy(logits, labels)
