"""The non-finite guard on its own: a NaN micro-step leaves the weights, both AdamW moments, the step count and
the BatchNorm running statistics exactly as they were, with no host read until check()."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kodiffcse.training.checkpoint import TrainState
from kodiffcse.training.nonfinite import NonFiniteGuard
from kodiffcse.training.loop import build_optimizer  # the loop's own optimizer
from kodiffcse.training.stop import Stop


def _accelerator(printed: list[str]):
    return SimpleNamespace(device=torch.device("cpu"), num_processes=1, scaler=None, print=printed.append)


def _snapshot(model, opt):
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [{k: v.clone() for k, v in s.items()} for s in opt.state.values()]
    return weights, moments


def _micro_step(model, opt, guard, nan: bool):
    guard.before_forward()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    if nan:
        loss = loss * float("nan")
    loss.backward()
    guard.after_backward(loss)
    wrapped = SimpleNamespace(optimizer=opt)  # Accelerate's AcceleratedOptimizer holds the torch one here
    guard.before_optimizer_step(wrapped)
    opt.step()
    opt.zero_grad(set_to_none=True)
    guard.after_sync()


def test_a_nan_step_changes_nothing_and_check_reports_it():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    opt = build_optimizer(model, 1e-2, 0.01)
    printed, state = [], TrainState()
    guard = NonFiniteGuard(_accelerator(printed), model, state, allowed=1)
    _micro_step(model, opt, guard, nan=False)  # AdamW state exists from here on
    state.step = 1
    weights, moments = _snapshot(model, opt)
    _micro_step(model, opt, guard, nan=True)
    state.step = 2
    after_weights, after_moments = _snapshot(model, opt)
    for key, value in weights.items():
        assert torch.equal(value, after_weights[key]), key  # BatchNorm running stats and counts included
    for before, after in zip(moments, after_moments):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(before[key], after[key]), key
    _micro_step(model, opt, guard, nan=False)
    assert not torch.equal(weights["0.weight"], model.state_dict()["0.weight"]), "a finite step updates again"
    guard.check()
    assert printed == ["non-finite loss at step 2: skipped (1 of 1 allowed)"] and state.nonfinite_skipped == 1


def test_a_bad_step_over_the_limit_skips_every_later_update_and_stops_before_it():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    opt = build_optimizer(model, 1e-2, 0.0)
    state = TrainState(step=4)
    guard = NonFiniteGuard(_accelerator([]), model, state, allowed=0)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    _micro_step(model, opt, guard, nan=True)
    state.step = 5
    _micro_step(model, opt, guard, nan=False)  # over the limit: later updates are skipped until the host looks
    state.step = 6
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(Stop) as stop:
        guard.check()
    assert stop.value.reason == "nonfinite" and state.step == 4
