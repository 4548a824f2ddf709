"""Losses: InfoNCE over in-batch (and cross-process) negatives, replaced-token detection, and their sum."""
from .diffcse import diffcse_loss
from .infonce import info_nce
from .rtd import rtd_loss

__all__ = ["diffcse_loss", "info_nce", "rtd_loss"]
