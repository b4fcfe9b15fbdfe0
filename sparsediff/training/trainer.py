"""The training loop: stage 1 (autoencoder), stage 2 (latent prior), or a pixel prior.

One function, :func:`train`, runs every stage the config asks for, on one CPU,
one GPU, or many ranks under ``torchrun`` (DDP). Rank 0 logs, evaluates and
writes checkpoints; every rank resumes from them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from sparsediff.data.gaps import random_training_mask
from sparsediff.data.stats import Stats, denormalize_array
from sparsediff.errors import TrainingError
from sparsediff.model import Model
from sparsediff.models.autoencoder import MaskedAutoencoder
from sparsediff.models.conditioning import latent_condition, pixel_condition
from sparsediff.models.precond import EDMPrecond
from sparsediff.models.unet import UNet
from sparsediff.rng import generator_for, seed_for
from sparsediff.training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from sparsediff.training.config import HideConfig, TrainConfig, load_config
from sparsediff.training.data import (
    Batch,
    BatchStream,
    PreparedData,
    holdout_batches,
    prepare_data,
)
from sparsediff.training.objectives import AutoencoderObjective, PriorObjective
from sparsediff.training.runtime import EMA, Runtime, cosine_lr, setup_runtime

__all__ = ["build_autoencoder", "build_prior", "train"]

_STAGE_KEYS = {"autoencoder": 1, "prior": 2, "pixel": 3}


def build_autoencoder(cfg: TrainConfig, n_vars: int) -> MaskedAutoencoder:
    """The stage-1 network the config describes."""
    a = cfg.autoencoder
    return MaskedAutoencoder(
        n_vars,
        spatial_dims=len(cfg.data.dims),
        widths=tuple(a.widths),
        latent_channels=a.latent_channels,
        blocks_per_level=a.blocks_per_level,
        attention=a.attention,
        checkpointing=a.checkpointing,
    )


def build_prior(cfg: TrainConfig, n_vars: int) -> EDMPrecond:
    """The stage-2 denoiser (latent or pixel space) the config describes."""
    p = cfg.prior
    if cfg.mode == "latent":
        channels = cfg.autoencoder.latent_channels
        cond_channels = channels + n_vars
    else:
        channels = n_vars
        cond_channels = 2 * n_vars
    backbone = UNet(
        spatial_dims=len(cfg.data.dims),
        in_channels=channels,
        out_channels=channels,
        cond_channels=cond_channels,
        widths=tuple(p.widths),
        blocks_per_level=p.blocks_per_level,
        attention_levels=tuple(p.attention_levels),
        dropout=p.dropout,
    )
    # Condition dropout is drawn by the trainer (keyed RNG), so the module's own is off.
    return EDMPrecond(backbone, sigma_data=1.0, cond_channels=cond_channels, cond_dropout=0.0)


def _shown_masks(
    shape: tuple[int, ...], hide: HideConfig, keys: list[tuple[int, ...]]
) -> torch.Tensor:
    out = []
    for k in keys:
        rng = np.random.default_rng(seed_for(*k))
        out.append(
            torch.from_numpy(
                random_training_mask(shape, rng, rate=hide.rate, patterns=tuple(hide.patterns))
            )
        )
    return torch.stack(out)[:, None]


class _Logger:
    """Rank-0 metrics to JSONL + CSV (+ TensorBoard when installed)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.out = out
        self.tb: Any = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **row}
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        csv_path = self.out / "metrics.csv"
        fields = ["time", "stage", "step", "loss", "mse", "lr", "samples_per_s", "holdout_rmse"]
        new = not csv_path.exists()
        with csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "step":
                    self.tb.add_scalar(f"{row['stage']}/{k}", v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class _Trainer:
    def __init__(self, cfg: TrainConfig, data: PreparedData, rt: Runtime, out: Path) -> None:
        self.cfg = cfg
        self.data = data
        self.rt = rt
        self.out = out
        self.n_vars = len(data.variables)
        self.logger = _Logger(out, rt.is_main)
        self.autoencoder: MaskedAutoencoder | None = None
        self.prior: EDMPrecond | None = None
        self.latent_scale = 1.0
        self.completed: list[str] = []
        self.global_batch = cfg.optim.batch_size
        if self.global_batch % rt.world_size:
            raise TrainingError(
                f"optim.batch_size {self.global_batch} is not divisible by the "
                f"{rt.world_size} ranks"
            )
        self.local_batch = self.global_batch // rt.world_size
        self._holdout: list[tuple[Batch, torch.Tensor]] | None = None

    # ------------------------------------------------------------------ helpers
    def _stages(self) -> list[str]:
        if self.cfg.mode == "pixel":
            return ["pixel"]
        return list(self.cfg.stages)

    def _steps(self, stage: str) -> int:
        return self.cfg.autoencoder.steps if stage == "autoencoder" else self.cfg.prior.steps

    def _to(self, b: Batch) -> Batch:
        dev = self.rt.device
        return Batch(b.values.to(dev), b.observed.to(dev), b.invalid.to(dev), b.index, b.positions)

    def holdout(self) -> list[tuple[Batch, torch.Tensor]]:
        if self._holdout is None:
            if self.data.holdout is None:
                self._holdout = []
            else:
                self._holdout = holdout_batches(
                    self.data.holdout, max_windows=64, batch_size=16, seed=self.cfg.run.seed
                )
        return self._holdout

    def _rmse_physical(self, pred: torch.Tensor, b: Batch, hidden: torch.Tensor) -> float:
        """RMSE in physical units over held-out observed points hidden from the model."""
        sq, n = 0.0, 0
        for c, var in enumerate(self.data.variables):
            vs = self.data.stats[var]
            m = (b.observed[:, c] & hidden[:, c]).cpu().numpy()
            if not m.any():
                continue
            p = denormalize_array(pred[:, c].float().cpu().numpy(), vs)[m]
            t = denormalize_array(b.values[:, c].float().cpu().numpy(), vs)[m]
            sq += float(((p - t) ** 2).sum())
            n += int(m.sum())
        return math.sqrt(sq / n) if n else float("nan")

    @torch.no_grad()
    def evaluate(self, stage: str, net: torch.nn.Module) -> float:
        """Masked RMSE on held-out windows (30% of their observed points hidden)."""
        rows = self.holdout()
        if not rows:
            return float("nan")
        from sparsediff.diffusion.samplers import sample_dpmpp_2m
        from sparsediff.diffusion.schedules import karras_sigmas

        sq = n = 0.0
        for b, show in rows:
            b = self._to(b)
            show = show.to(self.rt.device)
            view = b.observed & show
            hidden = ~show
            if stage == "autoencoder":
                assert isinstance(net, MaskedAutoencoder)
                mean, _ = net.encode(b.values, view)
                pred = net.decode(mean)
            else:
                g = generator_for(self.cfg.run.seed, 99, int(b.index[0]), device=self.rt.device)
                sigmas = karras_sigmas(12).to(self.rt.device)
                if stage == "prior":
                    assert self.autoencoder is not None
                    cond = latent_condition(self.autoencoder, b.values, view, self.latent_scale)
                    shape = (b.values.shape[0], self.autoencoder.latent_channels, *cond.shape[2:])
                else:
                    cond = pixel_condition(b.values, view)
                    shape = tuple(b.values.shape)
                x = torch.randn(shape, generator=g, device=self.rt.device) * sigmas[0]
                z = sample_dpmpp_2m(net, x, sigmas, cond=cond)
                if stage == "prior":
                    assert self.autoencoder is not None
                    pred = self.autoencoder.decode(z / self.latent_scale)
                else:
                    pred = z
            rm = self._rmse_physical(pred, b, hidden)
            cnt = float((b.observed & hidden).sum())
            if not math.isnan(rm):
                sq += rm**2 * cnt
                n += cnt
        return math.sqrt(sq / n) if n else float("nan")

    # ------------------------------------------------------------------ stages
    def _make_net(self, stage: str) -> torch.nn.Module:
        torch.manual_seed(seed_for(self.cfg.run.seed, 1000 + _STAGE_KEYS[stage]))
        if stage == "autoencoder":
            return build_autoencoder(self.cfg, self.n_vars)
        return build_prior(self.cfg, self.n_vars)

    @torch.no_grad()
    def _estimate_latent_scale(self) -> float:
        """1 / RMS of the encoder means over (up to) 64 training windows per rank."""
        assert self.autoencoder is not None
        stream = BatchStream(
            self.data.train,
            16,
            world_size=self.rt.world_size,
            rank=self.rt.rank,
            seed=self.cfg.run.seed,
            extra_missing=self.cfg.data.extra_missing,
        )
        n = min(64, stream.per_epoch)
        it = iter(stream)
        sq, count = 0.0, 0
        while count < n:
            b = self._to(next(it))
            mean, _ = self.autoencoder.encode(b.values, b.observed)
            sq += float((mean.float() ** 2).sum())
            count += b.values.shape[0]
            numel = mean[0].numel()
        acc = torch.tensor([sq, float(count * numel)], dtype=torch.float64)
        if self.rt.distributed:
            torch.distributed.all_reduce(acc)
        return float(1.0 / max(math.sqrt(float(acc[0] / acc[1])), 1e-6))

    def run_stage(self, stage: str, resume_from: Path | None) -> None:
        cfg, rt = self.cfg, self.rt
        total = self._steps(stage)
        net = self._make_net(stage).to(rt.device)
        start_step = 0
        opt_state = None
        ema_state: dict[str, torch.Tensor] | None = None
        ema_updates = 0
        resumed = False
        if resume_from is not None:
            st, tens, opt_state = load_checkpoint(resume_from)
            if st.stage == stage:
                load_state(net, tens["net"], f"{stage} weights")
                ema_state = tens["ema"]
                ema_updates = st.ema_updates
                start_step = st.step
                resumed = True
        if stage == "prior" and not resumed:
            self.latent_scale = self._estimate_latent_scale()
        ema = EMA(net, cfg.optim.ema_decay)
        if ema_state is not None:
            ema.load_state_dict(ema_state, ema_updates)
        if stage == "autoencoder":
            objective: torch.nn.Module = AutoencoderObjective(net, cfg.autoencoder.kl_weight)  # type: ignore[arg-type]
        else:
            objective = PriorObjective(net, cfg.prior.objective)  # type: ignore[arg-type]
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
        accum = cfg.optim.grad_accum
        stream = BatchStream(
            self.data.train,
            self.local_batch,
            world_size=rt.world_size,
            rank=rt.rank,
            start=start_step * accum * self.local_batch,
            num_workers=cfg.run.num_workers,
            extra_missing=cfg.data.extra_missing,
            seed=cfg.run.seed,
        )
        batches = iter(stream)
        bar = tqdm(
            total=total,
            initial=start_step,
            desc=stage,
            disable=not (rt.is_main and cfg.run.progress),
            dynamic_ncols=True,
        )
        last_ckpt = resume_from
        t0, seen = time.perf_counter(), 0
        net.train()
        for step in range(start_step, total):
            lr = cfg.optim.lr * cosine_lr(
                step, total=total, warmup=cfg.optim.warmup, min_ratio=cfg.optim.min_lr_ratio
            )
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss_sum = torch.zeros(2, device=rt.device)
            for micro in range(accum):
                b = self._to(next(batches))
                sync = micro == accum - 1 or not rt.distributed
                ctx = model.no_sync() if (rt.distributed and not sync) else contextlib.nullcontext()  # type: ignore[operator]
                with ctx, rt.autocast():
                    per, mse = self._forward(stage, model, b)
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
                bar.set_postfix(loss=f"{row['loss']:.4f}", sps=f"{row['samples_per_s']:.1f}")
                if eval_now:
                    with ema.swapped_into(net):
                        net.eval()
                        row["holdout_rmse"] = self.evaluate(stage, net)
                        net.train()
                self.logger.log(row)
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
        net.load_state_dict(ema.state_dict())
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        if stage == "autoencoder":
            self.autoencoder = net  # type: ignore[assignment]
        else:
            self.prior = net  # type: ignore[assignment]
        self.completed.append(stage)
        if rt.is_main:
            self._checkpoint(f"{stage}_done", total, net, ema, None)
        rt.barrier()

    def _forward(
        self,
        stage: str,
        model: torch.nn.Module,
        b: Batch,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        seed = cfg.run.seed
        sk = _STAGE_KEYS[stage]
        spatial = tuple(b.values.shape[2:])
        if stage == "autoencoder":
            assert isinstance(self._net_of(model), AutoencoderObjective)
            shown = _shown_masks(
                spatial, cfg.autoencoder.hide, [(seed, sk, 1, p) for p in b.positions]
            ).to(self.rt.device)
            ae: MaskedAutoencoder = self._net_of(model).autoencoder
            lat = ae.latent_shape(spatial)
            eps = torch.stack(
                [torch.randn(lat, generator=generator_for(seed, sk, 2, p)) for p in b.positions]
            ).to(self.rt.device)
            return model(b.values, b.observed, shown, eps)
        # prior stages
        view = b.observed & _shown_masks(
            spatial, cfg.prior.cond_hide, [(seed, sk, 3, p) for p in b.positions]
        ).to(self.rt.device)
        if stage == "prior":
            assert self.autoencoder is not None
            with torch.no_grad():
                mean, _ = self.autoencoder.encode(b.values, b.observed)
                x0 = mean.float() * self.latent_scale
                cond = latent_condition(self.autoencoder, b.values, view, self.latent_scale)
            weight = None
        else:
            x0 = b.values
            cond = pixel_condition(b.values, view)
            weight = b.observed.to(x0.dtype) if cfg.prior.pixel_loss == "masked" else None
        gens = [generator_for(seed, sk, 4, p) for p in b.positions]
        loss_fn = self._net_of(model).loss  # the objective's own loss draws its noise levels
        levels = torch.cat([loss_fn.sample_noise_level(1, generator=g) for g in gens])
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens])
        drop = torch.tensor(
            [
                float(torch.rand((), generator=generator_for(seed, sk, 5, p)))
                < cfg.prior.cond_dropout
                for p in b.positions
            ]
        )
        drop = drop.to(self.rt.device).view(-1, *([1] * (cond.ndim - 1)))
        cond = torch.where(drop, torch.zeros_like(cond), cond)
        per = model(
            x0, cond, levels.to(self.rt.device), noise.to(self.rt.device).to(x0.dtype), weight
        )
        return per, per.detach()

    @staticmethod
    def _net_of(model: torch.nn.Module) -> Any:
        return model.module if isinstance(model, DDP) else model

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
        if self.autoencoder is not None and stage not in ("autoencoder", "autoencoder_done"):
            tensors["autoencoder"] = self.autoencoder.state_dict()
        if self.prior is not None and stage == "prior_done":
            tensors["prior"] = self.prior.state_dict()
        extra = {"completed": self.completed, "latent_scale": self.latent_scale}
        return save_checkpoint(self.out, TrainState(stage, step, ema.updates, extra), tensors, opt)

    def restore_completed(self, path: Path) -> Path | None:
        """Rebuild finished stages from a checkpoint; return it if a stage is mid-way."""
        st, tens, _ = load_checkpoint(path)
        self.completed = list(st.extra.get("completed", []))
        self.latent_scale = float(st.extra.get("latent_scale", 1.0))
        if "autoencoder" in self.completed:
            ae = build_autoencoder(self.cfg, self.n_vars).to(self.rt.device)
            load_state(
                ae,
                tens["autoencoder"] if "autoencoder" in tens else tens["ema"],
                "autoencoder weights",
            )
            ae.eval().requires_grad_(False)
            self.autoencoder = ae
        if st.stage.endswith("_done"):
            if st.stage == "prior_done" or st.stage == "pixel_done":
                pr = build_prior(self.cfg, self.n_vars).to(self.rt.device)
                load_state(pr, tens["ema"], "prior weights")
                pr.eval().requires_grad_(False)
                self.prior = pr
            return None
        return path

    def model(self, stats: Stats, ds_source: str) -> Model:
        cfg = self.cfg
        config = {
            **self.data.facts,
            "mode": cfg.mode,
            "latent_scale": self.latent_scale,
            "cond_dropout": cfg.prior.cond_dropout,
            "invalid_along": cfg.data.invalid_along,
            "invalid_below": cfg.data.invalid_below,
            "log": list(cfg.data.log),
        }
        provenance = {
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": cfg.model_dump(mode="json"),
            "data_source": ds_source,
            "world_size": self.rt.world_size,
            "device": str(self.rt.device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "completed_stages": self.completed,
        }
        from sparsediff import __version__

        provenance["sparsediff"] = __version__
        if self.data.climatology is not None:
            config["climatology_dim"] = cfg.data.climatology_dim
        return Model(self.autoencoder, self.prior, stats, config, provenance, self.data.climatology)


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
        A YAML path, a dict or a :class:`~sparsediff.training.config.TrainConfig`.
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
        Invalid config or data that does not fit it (before any training step).
    TrainingError
        A non-finite loss or weights; the last good checkpoint is kept.
    """
    if config is None:
        raise TypeError("train() needs a config (YAML path, dict or TrainConfig)")
    cfg = load_config(config)
    if out is not None:
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"out": str(out)})})
    out_dir = Path(cfg.run.out)
    rt = setup_runtime(cfg.run.device, cfg.run.threads)
    try:
        data = prepare_data(cfg, ds, rank=rt.rank, world_size=rt.world_size)
        if not resume and rt.is_main and (out_dir / "checkpoints").exists():
            raise TrainingError(
                f"{out_dir} already holds checkpoints: pass --resume to continue, "
                "or choose another --out"
            )
        rt.barrier()
        trainer = _Trainer(cfg, data, rt, out_dir)
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
        source = "Dataset passed to train()" if ds is not None else str(cfg.data.source)
        model = trainer.model(data.stats, source)
        if rt.is_main:
            model.save(out_dir / "model", overwrite=True)
        rt.barrier()
        trainer.logger.close()
        return model
    finally:
        rt.close()
