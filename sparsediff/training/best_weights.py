"""The best in-training evaluation of a stage, and the weights it scored.

With ``run.keep_best`` (the default) and in-training evaluations
(``run.eval_every > 0``), the trainer hands every evaluation of a stage to a
[`BestWeights`][BestWeights]: when its ``val_rmse`` is the best of the stage
so far (ties go to the later evaluation) a CPU copy of the evaluated weights —
the EMA weights, which are what the trainer evaluates and what a stage ends
with — is kept. When the stage ends and its last evaluation was worse than its
best, the stage's network is given the best evaluation's weights before the
next stage (the prior then trains on the restored autoencoder's latents),
before calibration and before saving. Only the trainable weights are restored;
the optimizer state is not (the stage is over). A stage the method lists in
[`unscored_stages`][sparsediff.method.base.Method.unscored_stages] (the latent
prior, whose evaluation scores the regression whatever its weights) is not
tracked: it ends on its last weights.

Under DDP only rank 0 evaluates; at the end of the stage its record and, for
a restore, its best weights are broadcast to every rank.

A mid-stage checkpoint carries the best weights (tensor group ``best``) and
their record (``extra["best"]``), so a resumed run keeps the same best as an
uninterrupted one; a checkpoint written before this has neither and resumes
with no best yet.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

import torch

from sparsediff.training.runtime import Runtime

__all__ = ["MARGIN", "BestWeights"]

#: How much worse (relative) than the stage's best its last evaluation must be for
#: the stage to end on the best's weights (``run.keep_best: true``). On the demo
#: config the autoencoder's last evaluation was 0.66 % worse than its halfway one,
#: and the halfway weights filled the held-out months 0.3-0.8 % worse (RMSE):
#: differences that small are the validation split's noise, not over-fitting.
MARGIN = 0.02

log = logging.getLogger("sparsediff.train")

#: Name of the tensor group of a checkpoint that holds the best weights.
GROUP = "best"


@dataclass
class BestWeights:
    """The best evaluation of one stage so far, its weights, and the last evaluation.

    Attributes
    ----------
    stage
        The stage evaluated.
    active
        Whether it tracks and restores (``run.keep_best``, and a stage whose
        evaluation scores its weights: not in the method's
        [`unscored_stages`][sparsediff.method.base.Method.unscored_stages]).
    step, val_rmse
        Step and validation RMSE of the best evaluation (``None`` and ``inf``
        while there is none: no evaluation yet, or only non-finite ones).
    weights
        CPU copy of the weights the best evaluation scored.
    last_step, last_val_rmse
        Step and validation RMSE of the latest evaluation (``None`` before one).
    """

    stage: str
    active: bool = False
    margin: float = MARGIN
    step: int | None = None
    val_rmse: float = math.inf
    weights: dict[str, torch.Tensor] | None = None
    last_step: int | None = None
    last_val_rmse: float | None = None

    def observe(self, step: int, val_rmse: float, weights: dict[str, torch.Tensor]) -> bool:
        """Record an evaluation of ``weights``; keep a copy of them if they are the best so far.

        A non-finite RMSE is never the best. Ties keep the later weights. An
        inactive tracker records nothing.

        Returns
        -------
        bool
            Whether this evaluation is the new best.
        """
        if not self.active:
            return False
        self.last_step, self.last_val_rmse = step, float(val_rmse)
        if not math.isfinite(val_rmse) or (self.step is not None and val_rmse > self.val_rmse):
            return False
        self.step, self.val_rmse = step, float(val_rmse)
        self.weights = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
        return True

    @property
    def worse_at_end(self) -> bool:
        """Whether the latest evaluation is more than ``margin`` (relative) worse than the best,
        or not finite (a diverged stage)."""
        if self.step is None or self.last_step == self.step or self.last_val_rmse is None:
            return False
        last = self.last_val_rmse
        return not math.isfinite(last) or last > self.val_rmse * (1.0 + self.margin)

    def record(self) -> dict[str, Any]:
        """The best and the latest evaluation, as JSON (provenance and checkpoints)."""
        return {
            "step": self.step,
            "val_rmse": self.val_rmse if self.step is not None else None,
            "last_step": self.last_step,
            "last_val_rmse": self.last_val_rmse,
        }

    def describe(self) -> str:
        """One line saying which evaluation's weights the stage keeps."""
        return (
            f"{self.stage}: kept the weights of step {self.step} (validation RMSE "
            f"{self.val_rmse:.6g}); the last evaluation, at step {self.last_step}, "
            f"scored {self.last_val_rmse:.6g}"
        )

    # ------------------------------------------------------------- checkpoints
    def checkpoint_part(self) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
        """``(extra, tensor groups)`` to add to a checkpoint of this stage (none if inactive)."""
        if not self.active:
            return {}, {}
        extra = {"best": {"stage": self.stage, **self.record()}}
        tensors = {GROUP: self.weights} if self.weights is not None else {}
        return extra, tensors

    def resume(self, extra: dict[str, Any], tensors: dict[str, dict[str, torch.Tensor]]) -> None:
        """Take the best and last evaluation a checkpoint of this stage recorded.

        A checkpoint written before them (or without a best) leaves no best yet.
        """
        rec = extra.get("best")
        if not self.active or not isinstance(rec, dict) or rec.get("stage") != self.stage:
            return
        self.last_step, self.last_val_rmse = rec.get("last_step"), rec.get("last_val_rmse")
        if rec.get("step") is not None and GROUP in tensors:
            self.step, self.val_rmse = int(rec["step"]), float(rec["val_rmse"])
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in tensors[GROUP].items()}

    # ------------------------------------------------------------- end of stage
    def settle(self, net: torch.nn.Module, last: dict[str, torch.Tensor], rt: Runtime) -> bool:
        """Load the stage's final weights into ``net`` on every rank; log a restore.

        Collective under DDP: every rank calls it at the end of the stage.

        Parameters
        ----------
        net
            The stage's network.
        last
            The weights the stage ends with unless a later evaluation was worse
            than the best (its EMA weights).
        rt
            The runtime (rank 0 evaluated; its record and weights are broadcast).

        Returns
        -------
        bool
            Whether ``net`` now holds the best evaluation's weights (else ``last``).
        """
        if self.active:
            self.agree(rt.device, rt.distributed)
        if not (self.active and self.worse_at_end):
            net.load_state_dict(last)
            return False
        self.restore_into(net, rt.distributed)
        log.info(self.describe())
        if rt.is_main:
            print(self.describe(), file=sys.stderr, flush=True)
        return True

    def agree(self, device: torch.device, distributed: bool) -> None:
        """Give every rank rank 0's record (only rank 0 evaluates); weights stay on rank 0.

        A no-op when not distributed. Collective: every rank must call it.
        """
        if not distributed:
            return
        nan = float("nan")
        rec = self.record()
        vals = [nan if rec[k] is None else float(rec[k]) for k in rec]
        t = torch.tensor(vals, dtype=torch.float64, device=device)
        torch.distributed.broadcast(t, 0)
        step, val, last_step, last_val = t.tolist()
        self.step = None if math.isnan(step) else int(step)
        self.val_rmse = math.inf if self.step is None else val
        self.last_step = None if math.isnan(last_step) else int(last_step)
        self.last_val_rmse = None if self.last_step is None else last_val

    def restore_into(self, net: torch.nn.Module, distributed: bool) -> None:
        """Load the best weights into ``net`` (on every rank, from rank 0's copy when distributed).

        Collective when ``distributed``: every rank calls it after
        [`agree`][sparsediff.training.best_weights.BestWeights.agree].
        """
        if self.weights is not None:
            net.load_state_dict(self.weights)
        if distributed:
            for t in net.state_dict().values():
                torch.distributed.broadcast(t, 0)
