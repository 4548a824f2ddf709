"""Seeded shuffle of a large line file without loading it all: scatter to buckets, shuffle each."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from ...atomic import atomic_file

BUCKET_BYTES = 256 * 1024 * 1024


def shuffle_lines(src: Path, dst: Path, seed: int, bucket_bytes: int = BUCKET_BYTES) -> None:
    """Write src's lines to dst in a random order fixed by `seed` (dst replaced atomically)."""
    rng = random.Random(seed)
    n_buckets = max(1, -(-src.stat().st_size // bucket_bytes))
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".shuffle-") as tmp, atomic_file(dst) as out_path:
        buckets = [open(Path(tmp) / f"{i}.txt", "w+b") for i in range(n_buckets)]
        try:
            with open(src, "rb") as f:
                for line in f:
                    buckets[rng.randrange(n_buckets)].write(line)
            with open(out_path, "wb") as out:
                for b in buckets:
                    b.seek(0)
                    lines = b.read().splitlines(keepends=True)
                    rng.shuffle(lines)
                    out.writelines(lines)
        finally:
            for b in buckets:
                b.close()
