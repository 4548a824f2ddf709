"""What every benchmark reports besides its figures: the machine, peak memory, and the result as JSON."""
from __future__ import annotations

import json
import os
import platform
import resource


def machine(device=None) -> str:
    """CPU model and core count, or the GPU's name, so that figures from different machines are not mixed."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def peak_rss_gib(children: bool = False) -> float:
    """Peak resident memory of this process, or of its largest finished child process (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def emit(result: dict, json_out: str | None = None) -> None:
    """Print the result as one JSON line and, with `--json OUT`, write it to OUT atomically."""
    print(json.dumps(result, ensure_ascii=False))
    if json_out:
        from kodiffcse.atomic import atomic_write

        atomic_write(json_out, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
