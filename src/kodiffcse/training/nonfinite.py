"""The non-finite-loss guard: a NaN or inf loss must never reach the weights, and checking for one must not
cost a host sync per step (a GPU step would then wait for every kernel before the next is queued).

So every decision is a device tensor. A bad micro-step's update is skipped by the fused AdamW itself, through
`found_inf`; its BatchNorm running statistics are put back; once more steps went bad than --skip-nonfinite
allows, every later update is skipped as well. The host reads the flags only where it acts anyway (a log
line every 10 steps, an evaluation, a checkpoint, a signal's save, the end) and stops there, naming the first
step over the limit, with nothing saved after it.

Why `found_inf`. It is how GradScaler talks to fused optimizers: for an optimizer with
`_step_supports_amp_scaling` (fused AdamW sets it), torch/amp/grad_scaler.py's GradScaler.step sets the
tensor attributes `optimizer.grad_scale` and `optimizer.found_inf`, calls `optimizer.step()` and deletes them.
torch/optim/adam.py's Adam.step (AdamW's step in current torch; older releases have the same in
torch/optim/adamw.py's own AdamW.step and `_fused_adamw`) passes `getattr(self, "found_inf", None)` and
`getattr(self, "grad_scale", None)` to `_fused_adam`, which hands them to `torch._fused_adamw_` and afterwards
subtracts `found_inf` from the step counts it has just incremented. The kernel returns without touching the parameters, `exp_avg` or `exp_avg_sq`
when `*found_inf == 1` (ATen's FusedAdam.cpp on CPU, cuda/fused_adam_utils.cuh's FusedAdamMathFunctor on
CUDA). One float32 device tensor therefore skips weights, both moments and the step count, with no host read.
We set only `found_inf` (no `grad_scale`: nothing is scaled), on the torch optimizer under Accelerate's
wrapper, before every `optimizer.step()`.

Why not `if not torch.isfinite(loss): continue`: the `if` reads the flag on the host, a sync every micro-step.
Why not under fp16: Accelerate's GradScaler finds non-finite gradients itself, skips that update and lowers
the scale, and its step() would overwrite our attribute anyway; the guard then only counts and stops.
Only the loss is checked: a finite loss with non-finite gradients is not detected in fp32/bf16.
"""
from __future__ import annotations

import torch

from .checkpoint import TrainState
from .stop import Stop


class NonFiniteGuard:
    """Called around each micro-step by the loop; `check()` is the only place the host reads a flag."""

    def __init__(self, accelerator, model: torch.nn.Module, state: TrainState, allowed: int):
        self.accelerator, self.state, self.allowed = accelerator, state, allowed
        device = accelerator.device
        # running statistics (BatchNorm's) are the only buffers a forward pass moves; the rest (position ids)
        # are constants, not worth a copy and a restore every micro-step
        self.buffers = [b for mod in model.modules() if getattr(mod, "track_running_stats", False)
                        for b in mod.buffers(recurse=False)]
        self.bad_count = torch.full((), float(state.nonfinite_skipped), device=device)  # a resumed run's skips count
        self.window_skip = torch.zeros((), device=device)  # any bad micro-step in this accumulation window
        self.pending: list[tuple[int, torch.Tensor]] = []  # (step, bad flag) not yet read by the host
        self.use_found_inf = accelerator.scaler is None  # fp16's GradScaler skips non-finite updates itself
        self._kept: list[torch.Tensor] = []

    def before_forward(self) -> None:
        """BatchNorm running stats move in the forward pass: a skipped step must not keep them."""
        self._kept = [b.detach().clone() for b in self.buffers]

    def after_backward(self, loss: torch.Tensor) -> None:
        """Flag this micro-step on the device (alike on every rank) and undo its BatchNorm statistics if skipped."""
        bad = (~torch.isfinite(loss.detach())).float()
        if self.accelerator.num_processes > 1:
            bad = (self.accelerator.reduce(bad, "sum") > 0).float()  # every rank decides alike
        self.bad_count += bad
        skip = torch.maximum(bad, (self.bad_count > self.allowed).float())
        self.window_skip = torch.maximum(self.window_skip, skip)
        with torch.no_grad():
            for b, k in zip(self.buffers, self._kept):
                b.copy_(torch.where(skip.bool(), k, b))
        self.pending.append((self.state.step + 1, bad))

    def before_optimizer_step(self, optimizer) -> None:
        """`optimizer` is Accelerate's wrapper; the fused AdamW under it reads found_inf (module docstring)."""
        if self.use_found_inf:
            optimizer.optimizer.found_inf = self.window_skip

    def after_sync(self) -> None:
        """The accumulation window closed with its optimizer step: the next one starts clean."""
        self.window_skip = torch.zeros((), device=self.accelerator.device)

    def check(self) -> None:
        """Read the flags since the last check: report each allowed skip, stop at the first one over the limit."""
        if not self.pending:
            return
        flags = torch.stack([flag for _, flag in self.pending]).tolist()
        steps = [step for step, _ in self.pending]
        self.pending.clear()
        for step_number, flag in zip(steps, flags):
            if flag:
                self.state.nonfinite_skipped += 1
                if self.state.nonfinite_skipped > self.allowed:
                    self.state.step = step_number - 1  # updates from here on were skipped on the device
                    raise Stop("nonfinite")
                self.accelerator.print(f"non-finite loss at step {step_number}: skipped "
                                       f"({self.state.nonfinite_skipped} of {self.allowed} allowed)")
