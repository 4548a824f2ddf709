"""STS evaluation: whole-set correlations for four similarities, and the reference table."""
from .report import markdown_table, scores_x100
from .sts import METRICS, evaluate_encoder, evaluate_sts

__all__ = ["METRICS", "evaluate_encoder", "evaluate_sts", "markdown_table", "scores_x100"]
