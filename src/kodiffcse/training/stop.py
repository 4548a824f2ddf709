"""How a run ends before its last step. The non-finite guard, early stopping and the signal check each decide
for themselves and raise Stop with their reason; the loop only turns it into TrainResult.stopped_by, so none of
them needs to know the loop's shape, nor the loop theirs."""
from __future__ import annotations


class Stop(Exception):
    def __init__(self, reason: str):  # "early_stopping", "signal" or "nonfinite"
        self.reason = reason
