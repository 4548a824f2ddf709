"""kodiffcse: Korean sentence embeddings with DiffCSE (difference-based contrastive learning)."""
from __future__ import annotations

from .config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
from .errors import UserError

__version__ = "0.1.0"
__all__ = ["DataConfig", "ModelConfig", "SentenceEncoder", "TrainConfig", "TrainingConfig", "UserError", "__version__"]


def __getattr__(name: str):
    """Import SentenceEncoder (and with it torch) only when it is asked for, so the CLI starts fast."""
    if name == "SentenceEncoder":
        from .inference import SentenceEncoder

        return SentenceEncoder
    raise AttributeError(f"module 'kodiffcse' has no attribute {name!r}")
