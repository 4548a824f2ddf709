"""Losses: InfoNCE over in-batch (and cross-process) negatives, replaced-token detection, and their sum;
supervised SimCSE's InfoNCE over NLI triplets."""
from .diffcse import diffcse_loss
from .infonce import info_nce
from .rtd import rtd_loss
from .supervised import sup_simcse_loss, supervised_loss

__all__ = ["diffcse_loss", "info_nce", "rtd_loss", "sup_simcse_loss", "supervised_loss"]
