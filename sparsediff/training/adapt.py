"""Adaptation: fine-tune a trained model on the observed points of the data it will fill.

DINEOF and DINCAE fit the gappy record they fill; a trained sparsediff model
can do the same before it fills. [`adapt`][adapt] continues stage 1 (hide and
reconstruct, the training objective of
[`objective`][sparsediff.method.base.Method.objective]) on windows of the input
([`input_crops`][input_crops]: the training's window, stride, halo and context, the
model's own normalization and climatology): points hidden from the shown
points of a window are scored, points nobody observed never are. So the
held-out points of an evaluation, removed from the input before, cannot
reach the weights.

Only the **decoder** of the autoencoder is trained: the encoder (and with it
the latents the diffusion prior was trained on) stays as it was, so the prior
still matches its latents. The decoder holds the full-resolution observation
pathway and the learned departure from the first guess, the part that fits
the data at hand.

Every draw is keyed as in training ([`sparsediff.rng`][sparsediff.rng]: the hidden points
by ``(seed, ADAPT_HIDE, stage, position)``, the window order by ``(seed,
epoch)``), so an adaptation is deterministic, and with a run directory
(`AdaptOptions.out`) it writes checkpoints
([`checkpoint`][sparsediff.training.checkpoint]) and ``metrics.jsonl``, and a killed
run resumed from its newest checkpoint ends with the same weights.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from sparsediff.data.climatology import aligned_climatology, anomalies
from sparsediff.data.grid import is_global_longitude
from sparsediff.errors import ConfigError, NothingToFitError, TrainingError
from sparsediff.method import build_method
from sparsediff.method.eof_guess import aligned_eofs
from sparsediff.model import Model
from sparsediff.rng import Stream
from sparsediff.training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from sparsediff.training.config import TrainConfig, load_config
from sparsediff.training.crops import CropDataset
from sparsediff.training.data import BatchStream
from sparsediff.training.runtime import EMA, cosine_lr

__all__ = ["AdaptOptions", "adapt", "as_adapt_options", "input_crops", "training_config"]

log = logging.getLogger("sparsediff.adapt")

#: Name of the adaptation's checkpoints (``<out>/checkpoints/adapt-<step>``).
STAGE = "adapt"


@dataclass(frozen=True)
class AdaptOptions:
    """How to adapt a model to the data it fills.

    Attributes
    ----------
    steps
        Optimizer steps (0: no adaptation).
    lr
        Peak learning rate (``None``: a quarter of the training's), with a
        short warmup and a cosine decay to a tenth.
    batch_size
        Windows per step (``None``: the training's).
    seed
        Key of every random draw (hidden points, window order).
    out
        Run directory for checkpoints and ``metrics.jsonl`` (``None``: none
        written, not resumable).
    resume
        Continue from the newest checkpoint in ``out``.
    checkpoint_every, log_every
        Steps between checkpoints and between log lines.
    """

    steps: int = 100
    lr: float | None = None
    batch_size: int | None = None
    seed: int = 0
    out: str | None = None
    resume: bool = False
    checkpoint_every: int = 50
    log_every: int = 10

    def record(self) -> dict[str, Any]:
        """The options as JSON-able values (for provenance)."""
        return asdict(self)


def as_adapt_options(adapt: Any, seed: int = 0) -> AdaptOptions | None:
    """``adapt`` of [`fill`][sparsediff.filling.fill.fill] as options (``None`` when off).

    ``None``, ``False`` or ``0``: off; an int: that many steps with ``seed``;
    [`AdaptOptions`][AdaptOptions] or a dict of its fields: as given.

    Raises
    ------
    ConfigError
        Anything else, negative steps, or a non-positive learning rate or batch size.
    """
    if adapt is None or adapt is False:
        return None
    if isinstance(adapt, bool):
        raise ConfigError("adapt=True is ambiguous: give the number of steps (e.g. adapt=100)")
    if isinstance(adapt, int):
        opts = AdaptOptions(steps=int(adapt), seed=seed)
    elif isinstance(adapt, dict):
        try:
            opts = AdaptOptions(**{"seed": seed, **adapt})
        except TypeError as e:
            raise ConfigError(f"bad adapt options: {e}") from None
    elif isinstance(adapt, AdaptOptions):
        opts = adapt
    else:
        raise ConfigError(
            f"adapt must be a number of steps, AdaptOptions or a dict, got {type(adapt).__name__}"
        )
    if opts.steps < 0 or opts.checkpoint_every < 1 or opts.log_every < 1:
        raise ConfigError(
            f"adapt steps must be >= 0 and checkpoint_every/log_every >= 1, got {opts}"
        )
    if (opts.lr is not None and not opts.lr > 0) or (
        opts.batch_size is not None and opts.batch_size < 1
    ):
        raise ConfigError(f"adapt lr and batch_size must be positive, got {opts}")
    return opts if opts.steps > 0 else None


def training_config(model: Model) -> TrainConfig:
    """The training config a model was made with (from its provenance).

    Raises
    ------
    ConfigError
        A model without one (it cannot be adapted or calibrated on the input).
    """
    cfg = model.provenance.get("config")
    if not isinstance(cfg, dict):
        raise NothingToFitError(
            "the model records no training config in its provenance; it cannot be "
            "adapted or calibrated on the input"
        )
    return load_config(cfg)


def input_crops(
    model: Model,
    ds: xr.Dataset,
    states: xr.Dataset,
    *,
    seed: int,
    shuffle: bool = True,
    min_observed: float | None = None,
    keep: xr.DataArray | None = None,
) -> CropDataset:
    """Training windows over the data being filled, as the model was trained on them.

    Parameters
    ----------
    model
        The trained model (its window, stats, climatology and context).
    ds
        The data being filled (physical units), with its model variables.
    states
        Their point states ([`sparsediff.data.masks.states`][sparsediff.data.masks.states]); only
        observed points are ever shown or scored.
    seed
        Key of the window order.
    shuffle
        Keyed random window order (else the grid order).
    min_observed
        Least observed share of a window (default: the training's
        ``window.min_observed``; sparse point observations need less).
    keep
        The ``"real"`` hide pattern's mask of each crop at its own step
        (see [`CropDataset`][sparsediff.training.crops.CropDataset]).

    Raises
    ------
    ConfigError
        No window of the input has the training's share of observed points.
    """
    cfg = training_config(model)
    spec = model.spec
    variables = list(spec.variables)
    data = ds[variables]
    if model.climatology:
        data = anomalies(data, aligned_climatology(data, model.climatology))
    win = cfg.window
    halo = tuple(win.halo) if win.halo is not None else tuple(win.size)
    least = win.min_observed if min_observed is None else min_observed
    patterns = (*cfg.autoencoder.hide.patterns, *cfg.calibration.hide.patterns)
    crops = CropDataset(
        data,
        variables,
        tuple(spec.dims),
        tuple(spec.window),
        stride=tuple(win.stride) if win.stride else None,
        min_observed=least,
        stats=model.stats,
        states=states[variables],
        seed=seed,
        shuffle=shuffle,
        halo=halo,
        periodic=tuple(d in ds.coords and is_global_longitude(ds[d]) for d in spec.dims),
        context_dim=spec.context_dim if spec.n_context else None,
        context_offsets=tuple(spec.context_offsets),
        donor="real" in patterns,
        keep=keep,
        eofs=aligned_eofs(data, model.eofs, spec.eof_prior, variables, spec.dims)
        if model.eofs
        else None,
    )
    if len(crops.windows) == 0:
        raise NothingToFitError(
            f"no window of size {list(spec.window)} of the input has an observed share >= "
            f"{least}: nothing to adapt or calibrate on"
        )
    return crops


class _Run:
    """The run directory of an adaptation: checkpoints and ``metrics.jsonl``."""

    def __init__(self, opts: AdaptOptions) -> None:
        self.out = None if opts.out is None else Path(opts.out)
        self.opts = opts
        if self.out is not None:
            has = (self.out / "checkpoints").exists()
            if has and not opts.resume:
                raise TrainingError(
                    f"{self.out} already holds adaptation checkpoints: resume, or choose "
                    "another directory"
                )
            self.out.mkdir(parents=True, exist_ok=True)

    def restore(self) -> tuple[int, dict[str, dict[str, torch.Tensor]], Any, int] | None:
        """``(step, tensors, optimizer state, ema updates)`` of the newest checkpoint."""
        if self.out is None or not self.opts.resume:
            return None
        path = latest_checkpoint(self.out)
        if path is None:
            return None
        st, tens, opt_state = load_checkpoint(path)
        want = {"steps": self.opts.steps, "seed": self.opts.seed}
        got = {k: st.extra.get(k) for k in want}
        if st.stage != STAGE or got != want:
            raise TrainingError(
                f"{path} is not a checkpoint of this adaptation (it has {st.stage!r} {got}, "
                f"this run {want})"
            )
        return st.step, tens, opt_state, st.ema_updates

    def log(self, row: dict[str, Any]) -> None:
        log.info("adapt step %d/%d loss %.5f", row["step"], self.opts.steps, row["loss"])
        if self.out is not None:
            row = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **row}
            with (self.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")

    def checkpoint(self, step: int, net: torch.nn.Module, ema: EMA, opt: Any) -> None:
        if self.out is None:
            return
        extra = {"steps": self.opts.steps, "seed": self.opts.seed}
        tensors = {"net": net.state_dict(), "ema": ema.state_dict()}
        save_checkpoint(self.out, TrainState(STAGE, step, ema.updates, extra), tensors, opt)


def adapt(
    model: Model,
    ds: xr.Dataset,
    states: xr.Dataset,
    options: AdaptOptions,
    *,
    device: torch.device | str = "cpu",
) -> Model:
    """Fine-tune the model's decoder by hide and reconstruct on the observed points of ``ds``.

    Parameters
    ----------
    model
        A trained latent model (left unchanged).
    ds
        The data to be filled (physical units).
    states
        Point states of ``ds``: the observed points are the only data used.
    options
        Steps, learning rate, batch, seed and run directory.
    device
        Where to train.

    Returns
    -------
    Model
        A new model: the adapted autoencoder (EMA weights), the same prior,
        stats and calibration; ``provenance["adaptation"]`` records the
        options, the loss before and after and the wall time.

    Raises
    ------
    ConfigError
        A model without the network its method adapts
        ([`Method.adapts`][sparsediff.method.base.Method.adapts]: the latent
        autoencoder; a pixel model has none) or its training config; an input
        without an eligible window.
    TrainingError
        A non-finite loss; existing checkpoints without ``resume``.
    """
    stage = model.method.adapts
    if stage is None or stage not in model.nets:
        raise ConfigError(f"this {model.spec.mode} model has no trained network to adapt")
    cfg = training_config(model)
    from sparsediff.training.from_config import settings_of

    settings = dataclasses.replace(settings_of(cfg), seed=options.seed)
    crops = input_crops(model, ds, states, seed=options.seed)
    net = copy.deepcopy(model.nets[stage]).to(device)
    run = _Run(options)
    lr_peak = options.lr if options.lr is not None else cfg.optim.lr / 4
    batch = options.batch_size or cfg.optim.batch_size
    total = options.steps
    start, ema_state, opt_state, ema_updates = 0, None, None, 0
    restored = run.restore()
    if restored is not None:
        start, tens, opt_state, ema_updates = restored
        load_state(net, tens["net"], "adapted autoencoder weights")
        ema_state = tens["ema"]
    trainable = _decoder_only(net)
    nets = {**model.nets, stage: net}
    method = build_method(model.spec, nets)
    objective = method.objective(stage, net, settings)
    opt = torch.optim.AdamW(trainable, lr=lr_peak, weight_decay=cfg.optim.weight_decay)
    ema = EMA(net, cfg.optim.ema_decay)
    _resume_optimizer(opt, ema, opt_state, ema_state, ema_updates)
    batches = iter(BatchStream(crops, batch, start=start * batch))
    warmup = min(10, max(total // 10, 1))
    t0 = time.perf_counter()
    first = last = float("nan")
    net.train()
    for step in range(start, total):
        lr = lr_peak * cosine_lr(step, total=total, warmup=warmup, min_ratio=0.1)
        b = next(batches).to(device)
        kwargs = method.prepare(stage, b, settings, purpose=Stream.ADAPT_HIDE)
        value = _step(objective, kwargs, opt, trainable, (lr, cfg.optim.grad_clip), step)
        ema.update(net)
        first = value if math.isnan(first) else first
        last = value
        done = step + 1
        if done % options.log_every == 0 or done == total:
            run.log({"stage": STAGE, "step": done, "loss": value, "lr": lr})
        if done % options.checkpoint_every == 0 or done == total:
            run.checkpoint(done, net, ema, opt)
    _freeze_averaged(net, ema, model.nets[stage])
    record = {
        **options.record(),
        "lr_used": lr_peak,
        "batch_size_used": batch,
        "trained": "decoder",
        "windows": len(crops.windows),
        "resumed_at": start,
        "loss_first": first,
        "loss_last": last,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    provenance = {**model.provenance, "adaptation": record}
    return replace(model, nets=nets, provenance=provenance)


def _decoder_only(net: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Make only the decoder of ``net`` trainable; return its parameters."""
    trainable = [p for n, p in net.named_parameters() if n.startswith("decoder.")]
    for n, p in net.named_parameters():
        p.requires_grad_(n.startswith("decoder."))
    return trainable


def _resume_optimizer(
    opt: torch.optim.Optimizer,
    ema: EMA,
    opt_state: Any,
    ema_state: dict[str, torch.Tensor] | None,
    ema_updates: int,
) -> None:
    """Restore the optimizer and EMA states of a checkpoint (``None``: a fresh start)."""
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    if ema_state is not None:
        ema.load_state_dict(ema_state, ema_updates)


def _step(
    objective: Any,
    kwargs: dict[str, Any],
    opt: torch.optim.Optimizer,
    trainable: list[torch.nn.Parameter],
    lr_clip: tuple[float, float],
    step: int,
) -> float:
    """One optimizer step on one batch at learning rate and gradient clip ``lr_clip``.

    Returns the loss.

    Raises
    ------
    TrainingError
        The loss is not finite (no step is taken).
    """
    lr, grad_clip = lr_clip
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    per, _ = objective(**kwargs)
    loss = per.mean()
    loss.backward()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingError(f"adaptation loss became {value} at step {step}; stopped")
    torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
    opt.step()
    return value


def _freeze_averaged(net: torch.nn.Module, ema: EMA, trained: torch.nn.Module) -> None:
    """Load the EMA decoder weights into ``net`` beside the encoder exactly as trained."""
    original = trained.state_dict()
    averaged = {  # the frozen encoder exactly as trained (an average may round it)
        k: v if k.startswith("decoder.") else original[k].to(v.device)
        for k, v in ema.state_dict().items()
    }
    net.load_state_dict(averaged)
    net.eval().requires_grad_(False)
