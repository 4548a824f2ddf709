"""Dev evaluation during training: the dev score picks best/ and ends a run that stopped improving. Every
process must agree on both, so only the main process scores (the others would repeat its work) and broadcasts
the scores, and every process then keeps the same best score and patience count."""
from __future__ import annotations

import os
from typing import Callable

from ..export.sentence_transformers import save_sentence_model
from ..inference import SentenceEncoder
from .metrics import MetricsLog, write_line
from .stop import Stop


def published(path: str | None) -> str | None:
    """A local path as it may appear in a shared model: its last component."""
    return os.path.basename(os.path.normpath(path)) if path and os.path.exists(path) else path


class DevEvaluator:
    """Scores the training model's encoder with `score` (evaluate_encoder's signature) at step 0, at every
    eval_steps and at the end; exports best/ on improvement; raises Stop("early_stopping") after --patience
    evaluations without one."""

    def __init__(self, run, log: MetricsLog, score: Callable):
        m = run.cfg.model
        self.run, self.log, self.score = run, log, score
        self.encoder = SentenceEncoder(run.raw.encoder, run.tokenizer, m.pooler, m.max_len,  # one: says truncation once
                                       padding_free=m.padding_free, cpu_kernels=m.cpu_kernels)
        self.published_config = run.cfg.with_paths(published).to_dict()  # best/ is what gets shared: no private paths

    def scores(self) -> dict | None:
        """Main process scores the dev set; every process learns the score."""
        from accelerate.utils import broadcast_object_list

        run = self.run
        scores = None
        if run.accelerator.is_main_process and run.dev is not None:
            scores = self.score(self.encoder, run.dev, run.cfg.training.eval_batch_size)
        box = [scores]
        if run.accelerator.num_processes > 1:
            broadcast_object_list(box)
        return box[0]

    def at_start(self) -> None:
        """Step 0's score, the baseline of the curves; a resumed run has it already."""
        if self.run.state.step != 0 or self.run.dev is None:
            return
        step0 = self.scores()
        self._log(step0, 0)
        self.run.state.last_dev = step0[self.run.cfg.training.metric] if step0 else None

    def evaluate(self) -> None:
        scores = self.scores()
        if scores is None:
            return
        run, state, t = self.run, self.run.state, self.run.cfg.training
        value = scores[t.metric]  # validate() checked the name
        state.last_dev = value
        self._log(scores, state.step)
        if state.best_score is None or value > state.best_score:
            state.best_score, state.best_step, state.evals_without_improvement = value, state.step, 0
            self.export_best(scores)
        else:
            state.evals_without_improvement += 1
        if run.accelerator.is_main_process:
            write_line(f"step {state.step}/{run.total_steps}: dev {t.metric} {100 * value:.2f} "
                       f"(best {100 * state.best_score:.2f} at step {state.best_step})")
        if t.patience and state.evals_without_improvement >= t.patience:
            raise Stop("early_stopping")

    def _log(self, scores: dict, step: int) -> None:
        self.log.log({f"dev/{k}": v for k, v in scores.items()}, step)

    def at_end(self) -> None:
        """The last step's evaluation, unless its interval just ran; without a dev set the final model is best/."""
        t = self.run.cfg.training
        if not t.eval_steps or self.run.state.step % t.eval_steps:
            self.evaluate()
        if self.run.dev is None:
            self.export_best(None)

    def export_best(self, scores: dict | None) -> None:
        run, m = self.run, self.run.cfg.model
        if run.accelerator.is_main_process:
            payload = {"step": run.state.step, "dev_file": published(run.cfg.data.dev_file), "scores": scores}
            save_sentence_model(run.raw.encoder, run.tokenizer, run.best_dir, m.pooler, m.max_len,
                                self.published_config, payload)
        run.accelerator.wait_for_everyone()
