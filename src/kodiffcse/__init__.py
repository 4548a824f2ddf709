"""kodiffcse: Korean sentence embeddings with DiffCSE (difference-based contrastive learning)."""
from __future__ import annotations

from .config import DataConfig, ModelConfig, TrainConfig, TrainingConfig
from .errors import UserError

__version__ = "0.1.0"
__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "TrainingConfig", "UserError", "__version__"]
