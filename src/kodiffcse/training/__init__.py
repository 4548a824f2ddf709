"""Training: the per-step computation, the Accelerate loop, checkpoints."""
