"""The training loop: a loop over the stages of the model's method.

One function, [`train`][train], runs the stages of the method
([`Method.training_stages`][sparsediff.method.base.Method.training_stages] of the
config's ``stages``), on one CPU, one GPU, or many ranks under ``torchrun``
(DDP), then fits the method's calibration on the validation part
([`Method.calibrate`][sparsediff.method.base.Method.calibrate]). Everything that
differs between methods belongs to the method
([`sparsediff.method`][sparsediff.method]), looked up by the config's ``mode``
in [`METHODS`][sparsediff.method.METHODS]: what a stage trains, its network and its
per-sample objective, how a batch is prepared for it (hidden points, noise,
dropouts, all keyed by the sample's global position), what is fitted before a
stage starts ([`Method.before_stage`][sparsediff.method.base.Method.before_stage]),
what the in-training evaluation scores
([`Method.stage_estimate`][sparsediff.method.base.Method.stage_estimate]) and whether
there is a calibration. The loop never branches on the mode. Rank 0 logs,
evaluates and writes checkpoints; every rank resumes from them.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from sparsediff.data.stats import Stats, denormalize_array
from sparsediff.errors import TrainingError
from sparsediff.method import Method, build_method
from sparsediff.method.base import TrainBatch
from sparsediff.method.context_weight import fit_context_weight
from sparsediff.method.options import FillOptions
from sparsediff.method.spec import ModelSpec
from sparsediff.model import Model
from sparsediff.progress import disabled
from sparsediff.rng import Stream, seed_for
from sparsediff.training.best_weights import MARGIN, BestWeights
from sparsediff.training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from sparsediff.training.climatology_choice import prepare_with_climatology
from sparsediff.training.config import TrainConfig, check_unread, load_config
from sparsediff.training.data import (
    BatchStream,
    PreparedData,
    fixed_batches,
    whole_field_batches,
)
from sparsediff.training.from_config import architecture, hide_spec, initial_spec, settings_of
from sparsediff.training.metrics_log import MetricsLog
from sparsediff.training.runtime import EMA, Runtime, cosine_lr, setup_runtime

__all__ = ["architecture", "hide_spec", "initial_spec", "settings_of", "train"]

_STAGE_NUMBER = {"autoencoder": 1, "prior": 2}
#: Validation windows of the in-training evaluation, and their hidden share.
EVAL_WINDOWS = 32
EVAL_MEMBERS = 2


class _Trainer:
    def __init__(self, cfg: TrainConfig, data: PreparedData, rt: Runtime, out: Path) -> None:
        self.cfg = cfg
        self.data = data
        self.rt = rt
        self.out = out
        self.logger = MetricsLog(out, rt.is_main)
        self.settings = settings_of(cfg)
        self.arch = architecture(cfg)
        self.method: Method = build_method(initial_spec(cfg, data.facts))
        self.calibration = "none: calibration disabled"
        self.context_weight_note: str | None = None
        self.completed: list[str] = []
        #: Spec fields the method fitted before its stages (kept in every checkpoint).
        self.fitted: dict[str, Any] = {}
        #: The running stage's best evaluation; the stages that ended on their best's weights.
        self.best = BestWeights("")
        self.kept_best: dict[str, dict[str, Any]] = {}
        self.global_batch = cfg.optim.batch_size
        if self.global_batch % rt.world_size:
            raise TrainingError(
                f"optim.batch_size {self.global_batch} is not divisible by the "
                f"{rt.world_size} ranks"
            )
        self.local_batch = self.global_batch // rt.world_size
        self._validation: list[TrainBatch] | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def spec(self) -> ModelSpec:
        return self.method.spec

    def _update_spec(self, **changes: Any) -> None:
        self.method = build_method(self.spec.model_copy(update=changes), self.method.nets)

    def _stages(self) -> list[str]:
        return list(type(self.method).training_stages(self.cfg.stages))

    def _steps(self, stage: str) -> int:
        return self.cfg.stage_section(stage).steps

    def validation(self) -> list[TrainBatch]:
        if self._validation is None:
            v = self.data.validation
            self._validation = (
                []
                if v is None
                else fixed_batches(v, max_windows=EVAL_WINDOWS, batch_size=self.local_batch)
            )
        return self._validation

    def _rmse_physical(
        self, pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor
    ) -> tuple[float, int]:
        """Sum of squared errors (physical units) over ``mask`` and the point count."""
        sq, n = 0.0, 0
        for c, var in enumerate(self.data.variables):
            vs = self.data.stats[var]
            m = mask[:, c].cpu().numpy()
            if not m.any():
                continue
            p = denormalize_array(pred[:, c].float().cpu().numpy(), vs)[m]
            t = denormalize_array(truth[:, c].float().cpu().numpy(), vs)[m]
            sq += float(((p - t) ** 2).sum())
            n += int(m.sum())
        return sq, n

    @torch.no_grad()
    def evaluate(self, stage: str) -> float:
        """RMSE (physical units) on hidden points of the validation windows.

        The method's estimate while ``stage`` trains
        ([`Method.stage_estimate`][sparsediff.method.base.Method.stage_estimate]: by default
        the mean of a small ensemble of the fill's code path).
        """
        rows = self.validation()
        if not rows:
            return float("nan")
        sq = n = 0.0
        opts = FillOptions(members=EVAL_MEMBERS, seed=self.cfg.run.seed, steps=12)
        for batch in rows:
            b = batch.to(self.rt.device)
            w = self.method.windows(
                b, self.settings.hide, self.settings, stream=Stream.EVAL_HIDE, stage_key=0
            )
            pred = self.method.stage_estimate(stage, w.inputs, b.positions, opts)
            s_, n_ = self._rmse_physical(pred, w.values, w.scored)
            sq += s_
            n += n_
        return math.sqrt(sq / n) if n else float("nan")

    # ------------------------------------------------------------------ stages
    def _make_net(self, stage: str) -> torch.nn.Module:
        """A fresh network of ``stage``, its weights keyed by the seed and the stage.

        torch's initialisers draw from the global RNG, so this seeds it (the one
        global-RNG seeding of training; see [`sparsediff.rng`][sparsediff.rng]).
        """
        torch.manual_seed(seed_for(self.cfg.run.seed, Stream.NET_INIT + _STAGE_NUMBER[stage]))
        return type(self.method).new_net(stage, self.spec, self.arch)

    def _sample(self, n: int) -> Iterator[TrainBatch]:
        """Training batches (16 windows) of this rank until ``n`` windows, at most one epoch."""
        stream = BatchStream(self.data.train, 16, world_size=self.rt.world_size, rank=self.rt.rank)
        n = min(n, stream.per_epoch)
        it = iter(stream)
        count = 0
        while count < n:
            b = next(it).to(self.rt.device)
            yield b
            count += b.values.shape[0]

    def _sum_ranks(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the ranks (in place)."""
        if self.rt.distributed:
            torch.distributed.all_reduce(t)
        return t

    def _start_stage(
        self, stage: str, resume_from: Path | None
    ) -> tuple[torch.nn.Module, EMA, torch.optim.Optimizer, torch.nn.Module, int]:
        """A stage's network, EMA, optimizer and (DDP-wrapped) objective, resumed if asked.

        Returns the network, its EMA, the optimizer, the module to call for a
        loss, and the step to start from.
        """
        cfg, rt = self.cfg, self.rt
        net = self._make_net(stage).to(rt.device)
        start_step = 0
        opt_state = None
        ema_state: dict[str, torch.Tensor] | None = None
        ema_updates = 0
        resumed = False
        keep = cfg.run.keep_best is not False and cfg.run.eval_every > 0
        margin = MARGIN if cfg.run.keep_best is True else float(cfg.run.keep_best)
        tracked = keep and stage not in type(self.method).unscored_stages
        self.best = BestWeights(stage, tracked, margin)
        if resume_from is not None:
            st, tens, opt_state = load_checkpoint(resume_from)
            if st.stage == stage:
                load_state(net, tens["net"], f"{stage} weights")
                ema_state = tens["ema"]
                ema_updates = st.ema_updates
                start_step = st.step
                resumed = True
                self.best.resume(st.extra, tens)
        if not resumed:
            updates = self.method.before_stage(stage, self._sample, self.settings, self._sum_ranks)
            if updates:
                self.fitted.update(updates)
                self._update_spec(**updates)
        self.method.nets[stage] = net
        ema = EMA(net, cfg.optim.ema_decay)
        if ema_state is not None:
            ema.load_state_dict(ema_state, ema_updates)
        objective = self.method.objective(stage, net, self.settings)
        model: torch.nn.Module = objective
        if rt.distributed:
            model = DDP(
                objective, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
            )
        opt = torch.optim.AdamW(
            net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        if opt_state is not None and start_step > 0:
            opt.load_state_dict(opt_state)
        return net, ema, opt, model, start_step

    def _step(
        self,
        stage: str,
        step: int,
        total: int,
        parts: tuple[torch.nn.Module, torch.optim.Optimizer, torch.nn.Module],
        batches: Any,
        last_ckpt: Path | None,
    ) -> tuple[float, torch.Tensor, int]:
        """One optimizer step over ``grad_accum`` micro-batches.

        ``parts`` are the network, the optimizer and the module to call for a
        loss. Returns the learning rate, the (rank-averaged) loss and MSE, and
        the number of samples seen over all ranks.

        Raises
        ------
        TrainingError
            The loss became non-finite.
        """
        cfg, rt = self.cfg, self.rt
        net, opt, model = parts
        accum = cfg.optim.grad_accum
        lr = cfg.optim.lr * cosine_lr(
            step, total=total, warmup=cfg.optim.warmup, min_ratio=cfg.optim.min_lr_ratio
        )
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss_sum = torch.zeros(2, device=rt.device)
        seen = 0
        for micro in range(accum):
            b = next(batches).to(rt.device)
            kwargs = self.method.prepare(stage, b, self.settings)
            sync = micro == accum - 1 or not rt.distributed
            ctx = model.no_sync() if (rt.distributed and not sync) else contextlib.nullcontext()  # type: ignore[operator]
            with ctx, rt.autocast():
                per, mse = model(**kwargs)
                loss = per.mean() / accum
            loss.backward()
            loss_sum += torch.stack([per.detach().mean(), mse.detach().mean()]).float() / accum
            seen += b.values.shape[0] * rt.world_size
        if rt.distributed:
            torch.distributed.all_reduce(loss_sum)
            loss_sum /= rt.world_size
        if not torch.isfinite(loss_sum).all():
            raise TrainingError(
                f"{stage} loss became {float(loss_sum[0])} at step {step}; stopped. "
                f"Last good checkpoint: {last_ckpt or 'none written yet'} "
                "(lower optim.lr or check the data for extreme values)"
            )
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
        opt.step()
        return lr, loss_sum, seen

    def _log_step(
        self, row: dict[str, Any], net: torch.nn.Module, ema: EMA, bar: Any, eval_now: bool
    ) -> None:
        """Show and log a metrics row, with the EMA weights' validation RMSE when due.

        With ``run.keep_best``, the stage's best evaluated weights are kept and the
        last step's row names them (``kept_step``, ``kept_val_rmse``) if not the last.
        """
        bar.set_postfix(loss=f"{row['loss']:.4f}", sps=f"{row['samples_per_s']:.1f}")
        if eval_now:
            with ema.swapped_into(net):
                net.eval()
                row["val_rmse"] = self.evaluate(row["stage"])
                net.train()
            self.best.observe(row["step"], row["val_rmse"], ema.state_dict())
            if row["step"] == self._steps(row["stage"]) and self.best.worse_at_end:
                row.update(kept_step=self.best.step, kept_val_rmse=self.best.val_rmse)
        self.logger.log(row)

    def _finish_stage(self, stage: str, total: int, net: torch.nn.Module, ema: EMA) -> None:
        """Freeze the stage's final weights (EMA, or the best evaluated: keep_best); checkpoint."""
        if self.best.settle(net, ema.state_dict(), self.rt):
            ema.load_state_dict(net.state_dict(), ema.updates)  # the done checkpoint's too
            self.kept_best[stage] = self.best.record()
        self.best = BestWeights("")
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.method.nets[stage] = net
        self.completed.append(stage)
        if self.rt.is_main:
            self._checkpoint(f"{stage}_done", total, net, ema, None)
        self.rt.barrier()

    def run_stage(self, stage: str, resume_from: Path | None) -> None:
        """Train one stage (from scratch, or on from a checkpoint of it), then freeze it."""
        cfg, rt = self.cfg, self.rt
        total = self._steps(stage)
        net, ema, opt, model, start_step = self._start_stage(stage, resume_from)
        stream = BatchStream(
            self.data.train,
            self.local_batch,
            world_size=rt.world_size,
            rank=rt.rank,
            start=start_step * cfg.optim.grad_accum * self.local_batch,
            num_workers=cfg.run.num_workers,
        )
        batches = iter(stream)
        bar = tqdm(
            total=total,
            initial=start_step,
            desc=stage,
            disable=disabled(cfg.run.progress) if rt.is_main else True,
            dynamic_ncols=True,
        )
        last_ckpt = resume_from
        t0, seen = time.perf_counter(), 0
        net.train()
        for step in range(start_step, total):
            lr, loss_sum, n = self._step(stage, step, total, (net, opt, model), batches, last_ckpt)
            seen += n
            ema.update(net)
            done = step + 1
            bar.update(1)
            eval_now = bool(cfg.run.eval_every) and (
                done % cfg.run.eval_every == 0 or done == total
            )
            if rt.is_main and (done % cfg.run.log_every == 0 or done == total or eval_now):
                dt = time.perf_counter() - t0
                row: dict[str, Any] = {
                    "stage": stage,
                    "step": done,
                    "loss": float(loss_sum[0]),
                    "mse": float(loss_sum[1]),
                    "lr": lr,
                    "samples_per_s": seen / dt if dt > 0 else float("nan"),
                }
                self._log_step(row, net, ema, bar, eval_now)
                t0, seen = time.perf_counter(), 0
            if done % cfg.run.checkpoint_every == 0 or done == total:
                if not all(torch.isfinite(p).all() for p in net.parameters()):
                    raise TrainingError(
                        f"{stage} weights became non-finite at step {step}; stopped. "
                        f"Last good checkpoint: {last_ckpt or 'none written yet'}"
                    )
                if rt.is_main:
                    last_ckpt = self._checkpoint(stage, done, net, ema, opt)
                rt.barrier()
        bar.close()
        self._finish_stage(stage, total, net, ema)

    def fit_context_weight(self) -> None:
        """Fit the weight of the neighbouring steps in the first guess.

        On the validation part when there is one (the part nearest the data a
        model will fill, where the spread is calibrated too), else on the
        training part. Deterministic (keyed by the crops' positions), so a
        resumed run fits the same weight; see
        [`fit_context_weight`][sparsediff.method.context_weight].
        """
        part = self.data.validation if self.data.validation is not None else self.data.train
        fit = fit_context_weight(
            self.method,
            whole_field_batches(part),
            self.settings,
            device=self.rt.device,
            progress=self.cfg.run.progress if self.rt.is_main else False,
        )
        if fit is None:
            return
        self._update_spec(context_weight=fit.weight)
        where = "validation" if self.data.validation is not None else "training"
        self.context_weight_note = fit.describe(where)
        if self.rt.is_main:
            print(self.context_weight_note, file=sys.stderr, flush=True)

    def calibrate(self) -> None:
        """Fit the method's calibration on the validation part (``calibration.hide`` hidden).

        A method that fits nothing records why
        ([`Method.uncalibrated`][sparsediff.method.base.Method.uncalibrated]).
        """
        c = self.cfg.calibration
        why = self.method.uncalibrated()
        if why is not None:
            self.calibration = why
            return
        if not c.enabled:
            return
        if self.data.validation is None:
            self.calibration = "none: no validation part to fit it on (data.validation_fraction)"
            return
        batches = fixed_batches(
            self.data.validation, max_windows=c.max_windows, batch_size=self.local_batch
        )
        hide = hide_spec(c.hide)
        shown = self.cfg.run.progress if self.rt.is_main else False
        updates, self.calibration = self.method.calibrate(
            batches,
            self.settings,
            hide=hide,
            members=c.members,
            steps=c.steps,
            device=self.rt.device,
            progress=shown,
            variability=c.variability,
        )
        if updates:
            self._update_spec(**updates)

    def _checkpoint(
        self,
        stage: str,
        step: int,
        net: torch.nn.Module,
        ema: EMA,
        opt: torch.optim.Optimizer | None,
    ) -> Path:
        tensors: dict[str, dict[str, torch.Tensor]] = {
            "net": net.state_dict(),
            "ema": ema.state_dict(),
        }
        for name in self.completed:
            if name != stage.removesuffix("_done"):
                tensors[name] = self.method.nets[name].state_dict()
        extra = {"completed": self.completed, "fitted": self.fitted, "kept_best": self.kept_best}
        if not stage.endswith("_done"):  # a stage mid-way: its best so far
            best_extra, best_tensors = self.best.checkpoint_part()
            extra.update(best_extra)
            tensors.update(best_tensors)
        return save_checkpoint(self.out, TrainState(stage, step, ema.updates, extra), tensors, opt)

    def restore_completed(self, path: Path) -> Path | None:
        """Rebuild finished stages from a checkpoint; return it if a stage is mid-way."""
        st, tens, _ = load_checkpoint(path)
        self.completed = list(st.extra.get("completed", []))
        fitted = st.extra.get("fitted")
        if fitted is None:  # a checkpoint written before "fitted": its one fitted field
            fitted = {"latent_scale": float(st.extra.get("latent_scale", 1.0))}
        self.fitted = dict(fitted)
        self.kept_best = dict(st.extra.get("kept_best", {}))
        self._update_spec(**self.fitted)
        for name in self.completed:
            net = type(self.method).new_net(name, self.spec, self.arch).to(self.rt.device)
            load_state(net, tens[name] if name in tens else tens["ema"], f"{name} weights")
            net.eval().requires_grad_(False)
            self.method.nets[name] = net
        if st.stage.endswith("_done"):
            return None
        return path

    def model(self, stats: Stats, ds_source: str) -> Model:
        cfg = self.cfg
        spec = self.spec.model_copy(update={"calibration": self.calibration})
        provenance = {
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": cfg.model_dump(mode="json"),
            "data_source": ds_source,
            "world_size": self.rt.world_size,
            "device": str(self.rt.device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "completed_stages": self.completed,
            "calibration": self.calibration,
            "climatology": self.data.climatology_note,
        }
        if self.context_weight_note is not None:
            provenance["context_weight"] = self.context_weight_note
        if self.kept_best:
            provenance["kept_best"] = self.kept_best
        if self.data.region is not None:
            provenance["trained_region"] = self.data.region
        provenance["sparsediff"] = sys.modules["sparsediff"].__version__  # the package itself
        nets = {k: v for k, v in self.method.nets.items() if k in self.completed}
        d = self.data
        return Model(spec, nets, stats, provenance, d.climatology, d.invalid, d.eofs)


def train(
    ds: xr.Dataset | None = None,
    config: str | os.PathLike[str] | dict[str, Any] | TrainConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> Model:
    """Train a sparsediff model on incomplete data.

    Parameters
    ----------
    ds
        The training data; replaces the config's ``data.source`` when given.
    config
        A YAML path, a dict or a [`TrainConfig`][sparsediff.training.config.TrainConfig].
    out
        Run directory (overrides ``run.out``): checkpoints, metrics and the final
        model (``out/model``).
    resume
        Continue from the newest checkpoint in ``out`` (model, optimizer, EMA,
        LR schedule position, data position; randomness is keyed by step so it
        needs no state).

    Returns
    -------
    Model
        The trained model (EMA weights), also saved to ``out/model``.

    Raises
    ------
    ConfigError
        Invalid config, a key set that training would not read
        ([`unread_keys`][sparsediff.training.config.unread_keys]; nothing is
        written), or data that does not fit it (before any training step).
    TrainingError
        A non-finite loss or weights; the last good checkpoint is kept.

    Warns
    -----
    SparsediffWarning
        Keys set in a section the mode's method does not read (pixel mode:
        ``autoencoder.*`` but ``hide``, and ``calibration.*``): they are ignored.
    """
    if config is None:
        raise TypeError("train() needs a config (YAML path, dict or TrainConfig)")
    cfg = load_config(config)
    check_unread(cfg)
    if out is not None:
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"out": str(out)})})
    out_dir = Path(cfg.run.out)
    rt = setup_runtime(cfg.run.device, cfg.run.threads)
    try:
        cfg, data = prepare_with_climatology(cfg, ds, rt)  # data.climatology resolved
        if not resume and rt.is_main and (out_dir / "checkpoints").exists():
            raise TrainingError(
                f"{out_dir} already holds checkpoints: pass --resume to continue, "
                "or choose another --out"
            )
        rt.barrier()
        trainer = _Trainer(cfg, data, rt, out_dir)
        if cfg.guess_context_weight == "auto":  # before any network sees the guess
            trainer.fit_context_weight()
        partial: Path | None = None
        if resume:
            ck = latest_checkpoint(out_dir)
            if ck is not None:
                partial = trainer.restore_completed(ck)
        for stage in trainer._stages():
            if stage in trainer.completed:
                continue
            from_ckpt = partial if partial is not None and partial.name.startswith(stage) else None
            trainer.run_stage(stage, from_ckpt)
            partial = None
        trainer.calibrate()
        source = "Dataset passed to train()" if ds is not None else str(cfg.data.source)
        model = trainer.model(data.stats, source)
        if rt.is_main:
            model.save(out_dir / "model", overwrite=True)
        rt.barrier()
        trainer.logger.close()
        return model
    finally:
        rt.close()
