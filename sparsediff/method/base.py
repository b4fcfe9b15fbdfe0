"""One owner of the method: the [`Method`][Method] interface and what its subclasses share.

A method is a [`ModelSpec`][sparsediff.method.spec.ModelSpec] plus its networks,
and it alone knows how to

* turn frames into network inputs ([`Method.inputs`][Method.inputs]),
* complete windows ([`Method.complete`][Method.complete]) — the one code path that
  [`sparsediff.fill`][sparsediff.filling.fill.fill], the in-training evaluation and the spread
  calibration all call;
* train: which stages it has ([`Method.stages`][Method.stages],
  [`Method.training_stages`][Method.training_stages]), the fresh network of each
  stage ([`Method.new_net`][Method.new_net]) and its class
  ([`Method.networks`][Method.networks], the only classes a saved model of this
  mode may name), the per-sample objective
  ([`Method.objective`][Method.objective]), the keyed preparation of a batch for it
  ([`Method.prepare`][Method.prepare]), what is fitted before a stage
  ([`Method.before_stage`][Method.before_stage]) and what the in-training
  evaluation scores after it ([`Method.stage_estimate`][Method.stage_estimate]);
* size windows: how much its networks coarsen them
  ([`Method.window_factors`][Method.window_factors], checked against ``window.size``);
* calibrate: what is fitted on held-out data after training
  ([`Method.calibrate`][Method.calibrate]), or why nothing is
  ([`Method.uncalibrated`][Method.uncalibrated]).

The registry [`METHODS`][sparsediff.method.METHODS] maps each ``mode`` to its
class; the trainer, the training config and model loading ask it and never
branch on a mode themselves. ``fill`` is bookkeeping around [`Method.complete`][Method.complete].
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from sparsediff.data.gaps import random_training_mask
from sparsediff.diffusion.schedules import karras_sigmas
from sparsediff.errors import ConfigError
from sparsediff.method.inputs import Frames, build_inputs, n_inputs
from sparsediff.method.options import FillOptions
from sparsediff.method.spec import ModelSpec
from sparsediff.rng import Stream, generator_for, numpy_rng_for

if TYPE_CHECKING:  # the calibration owns how spreads are fitted
    from sparsediff.method.calibration import SpreadFit
__all__ = [
    "HideSpec",
    "Method",
    "NetworkClass",
    "TrainBatch",
    "TrainSettings",
    "WindowFactors",
    "Windows",
]


@dataclass
class TrainBatch:
    """A batch of training crops (window + halo on every side), normalized.

    Attributes
    ----------
    values, observed, active
        ``(N, C, *crop)``; ``observed`` and ``active`` are bool.
    context, context_observed
        ``(N, K, C, *crop)`` neighbouring frames (``None`` without context).
    donor
        ``(N, C, *crop)`` bool: the observed mask of the same crop at another
        step, for "real" hide masks (``None`` when not read).
    halo
        Halo per spatial dim: the window is ``crop[halo : halo + window]``.
    positions
        Global sample position of each row (keys of every random draw).
    basis, eof_prior, outside
        The EOF background's inputs (``None`` without one): see
        [`Frames`][sparsediff.method.inputs.Frames].
    """

    values: Tensor
    observed: Tensor
    active: Tensor
    halo: tuple[int, ...]
    positions: list[int]
    context: Tensor | None = None
    context_observed: Tensor | None = None
    donor: Tensor | None = None
    basis: Tensor | None = None
    eof_prior: Tensor | None = None
    outside: tuple[Tensor, Tensor] | None = None

    def to(self, device: torch.device | str) -> TrainBatch:
        """The batch on ``device``."""
        names = ("values", "observed", "active", "context", "context_observed", "donor", "basis")
        moved: dict[str, Any] = {f: getattr(self, f) for f in (*names, "eof_prior")}
        moved = {f: None if t is None else t.to(device) for f, t in moved.items()}
        out = self.outside
        moved["outside"] = None if out is None else (out[0].to(device), out[1].to(device))
        return dataclasses.replace(self, **moved)


@dataclass(frozen=True)
class HideSpec:
    """Hide and reconstruct: the share and shapes of points hidden in a sample."""

    rate: tuple[float, float] = (0.1, 0.6)
    patterns: tuple[str, ...] = ("mcar", "boxes", "stripes", "cloud")


@dataclass(frozen=True)
class TrainSettings:
    """What training needs beyond the spec (from the training config)."""

    seed: int = 0
    hide: HideSpec = field(default_factory=HideSpec)
    prior_hide: HideSpec = field(default_factory=lambda: HideSpec((0.0, 0.7)))
    context_drop: float = 0.15
    kl_weight: float = 1e-5
    latent_dropout: float = 0.3
    cond_dropout: float = 0.1
    objective: str = "edm"


@dataclass
class Windows:
    """Prepared training windows: inputs and what the objective scores.

    Attributes
    ----------
    inputs
        ``(N, n_inputs, *window)`` network inputs (from the shown points).
    values
        ``(N, C, *window)`` the target (anything where not observed).
    observed
        bool: where the target is known.
    scored
        bool: the known points the model did not see (hidden ones).
    """

    inputs: Tensor
    values: Tensor
    observed: Tensor
    scored: Tensor


@dataclass(frozen=True)
class WindowFactors:
    """How much a method's networks coarsen a window, per spatial dim.

    Attributes
    ----------
    latent
        The prior runs on a grid this many times coarser than the window
        (1: on the window itself); the prior U-Net's own factor multiplies it.
    decoder
        A full-resolution network of the method halves the window this often
        (as a power of 2; 1: none).
    """

    latent: int = 1
    decoder: int = 1


class NetworkClass(Protocol):
    """A network class a saved model may name (by its ``__name__``).

    It is rebuilt, untrained, from the ``config`` saved with it.
    """

    def from_config(self, cfg: dict[str, Any], /) -> nn.Module:
        """An untrained network of the saved configuration."""
        ...


#: Compiled network calls per network: ``{(name, backend): compiled}``.
_COMPILED: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Callable[..., Tensor]]] = (
    weakref.WeakKeyDictionary()
)


def _hide_keep(
    shape: tuple[int, ...], hide: HideSpec, donor: np.ndarray | None, *keys: int
) -> np.ndarray:
    """The "shown" mask of one sample: a random pattern, or a real mask from another step."""
    rng = numpy_rng_for(*keys)
    patterns = list(hide.patterns)
    if "real" in patterns and (donor is None or donor.all()):
        patterns.remove("real")  # no real gaps to copy: the other patterns only
    if not patterns:
        return np.ones(shape, dtype=bool)
    pick = patterns[int(rng.integers(len(patterns)))]
    if pick == "real":
        assert donor is not None
        return donor.copy()
    return random_training_mask(shape, rng, rate=hide.rate, patterns=(pick,))


class Method:
    """Interface of a completion method (see the module docstring).

    Parameters
    ----------
    spec
        What the model fills and how.
    nets
        Its networks by stage name (missing ones are untrained).
    """

    mode: ClassVar[str] = ""
    """The ``mode`` of the config and the spec that names this method (its key in ``METHODS``)."""
    stages: ClassVar[tuple[str, ...]] = ()
    """Training stages, in order; each is a section of the training config."""
    required: ClassVar[tuple[str, ...]] = ()
    """Name of the net that a fill cannot do without."""
    networks: ClassVar[dict[str, NetworkClass]] = {}
    """The network class of each stage; loading a model builds no other class."""
    own_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of shared config sections only this method reads; other modes refuse them."""
    calibrates: ClassVar[bool] = False
    """Whether [`calibrate`][calibrate] fits anything (a config's ``calibration.*`` is read)."""
    adapts: ClassVar[str | None] = None
    """The stage whose network adaptation fine-tunes on the data filled (None: no adaptation)."""
    unscored_stages: ClassVar[tuple[str, ...]] = ()
    """Stages whose in-training evaluation does not depend on their weights (no keep_best)."""

    def __init__(self, spec: ModelSpec, nets: dict[str, nn.Module] | None = None) -> None:
        if spec.mode != self.mode:
            raise ConfigError(f"{type(self).__name__} cannot run a {spec.mode!r} model")
        self.spec = spec
        self.nets: dict[str, nn.Module] = dict(nets or {})

    # ------------------------------------------------------------------ inputs
    @property
    def n_inputs(self) -> int:
        """Input channels of the networks."""
        return n_inputs(self.spec.n_vars, self.spec.n_context)

    def inputs(self, frames: Frames, periodic: Sequence[bool] | None = None) -> Tensor:
        """Network inputs of whole frames (the first guess sees the whole frame)."""
        return build_inputs(
            frames,
            guess=self.spec.first_guess,
            n_context=self.spec.n_context,
            periodic=periodic,
            use_context=self.spec.guess_context,
            context_weight=self.spec.context_weight,
        )

    # ------------------------------------------------------------------ completion
    def complete(
        self, inputs: Tensor, keys: Sequence[tuple[int, ...]], opts: FillOptions
    ) -> Tensor:
        """One completion per row of ``inputs``, in normalized units.

        Parameters
        ----------
        inputs
            ``(N, n_inputs, *window)`` from [`inputs`][inputs], cut to windows.
        keys
            One integer key per row; all randomness of row ``i`` comes from
            ``(opts.seed, stream, *keys[i])``, so a row's result does not
            depend on the other rows of the batch.
        opts
            Sampling options.

        Returns
        -------
        torch.Tensor
            ``(N, C, *window)``: every point predicted (the caller copies the
            observed points back and blanks the invalid ones).
        """
        raise NotImplementedError

    def complete_parts(
        self,
        inputs: Tensor,
        keys: Sequence[tuple[int, ...]],
        opts: FillOptions,
        *,
        repeats: int = 1,
    ) -> tuple[Tensor, Tensor]:
        """A completion split into its deterministic centre and its random perturbation.

        ``centre + perturbation == complete(...)``. The perturbation is
        (approximately) zero-mean and independent between windows, so tiles
        blend it variance-preservingly (see
        [`Accumulator`][sparsediff.data.tiling.Accumulator]); a method without such a
        split returns the whole completion as the centre and a zero perturbation.

        With ``repeats = R``, each input row serves R consecutive keys (the
        members of one window): ``len(keys) == R * len(inputs)``, and what
        does not depend on the key (the regression) is computed once per row.
        """
        rows = inputs.repeat_interleave(repeats, dim=0) if repeats > 1 else inputs
        if len(keys) != rows.shape[0]:
            raise ValueError(f"{len(keys)} keys for {rows.shape[0]} rows")
        out = self.complete(rows, keys, opts)
        return out, torch.zeros_like(out)

    def check_ready(self) -> None:
        """Raise [`ConfigError`][ConfigError] when a net a fill needs is missing."""
        missing = [n for n in self.required if n not in self.nets]
        if missing:
            raise ConfigError(
                f"this {self.mode} model has no trained {', '.join(missing)}; "
                "train all its stages before filling"
            )

    def accelerated(
        self, name: str, fn: Callable[..., Tensor], opts: FillOptions, device: torch.device
    ) -> Callable[..., Tensor]:
        """``fn`` (a network, or a bound method of one) as ``opts`` asks.

        ``opts.compile != "off"``: `torch.compile` with that backend,
        compiled once per network, ``name`` and backend (kept with the
        network, so every fill of a model reuses it). ``"bfloat16"``: run
        under `torch.autocast` on ``device`` and return ``float32``.
        The defaults return ``fn`` itself (bit-identical fills).
        """
        if opts.compile != "off":
            owner = getattr(fn, "__self__", fn)
            cache = _COMPILED.setdefault(owner, {})
            key = (name, opts.compile)
            if key not in cache:
                cache[key] = torch.compile(fn, backend=opts.compile)
            fn = cache[key]
        if opts.precision == "float32":
            return fn
        dtype = getattr(torch, opts.precision)
        device_type = torch.device(device).type
        inner = fn

        def autocast(*args: Any, **kwargs: Any) -> Tensor:
            with torch.autocast(device_type=device_type, dtype=dtype):
                out = inner(*args, **kwargs)
            return out.float()

        return autocast

    def sigmas(self, opts: FillOptions, device: torch.device | str) -> Tensor:
        """The sampling noise levels of ``opts`` (the spread's steps when it names none)."""
        steps = opts.at_steps(self.spec.spread_steps).steps
        assert steps is not None
        return karras_sigmas(steps, sigma_min=opts.sigma_min, sigma_max=opts.sigma_max).to(device)

    @staticmethod
    def noise(
        shape: Sequence[int], keys: Sequence[tuple[int, ...]], seed: int, device: torch.device
    ) -> Tensor:
        """Standard normal noise, row ``i`` from ``(seed, FILL_NOISE, *keys[i])`` (drawn on CPU)."""
        rows = [
            torch.randn(tuple(shape), generator=generator_for(seed, Stream.FILL_NOISE, *k))
            for k in keys
        ]
        return torch.stack(rows).to(device)

    @staticmethod
    def step_generators(keys: Sequence[tuple[int, ...]], seed: int) -> list[torch.Generator]:
        """One CPU generator per row for the per-step noise of stochastic samplers."""
        return [generator_for(seed, Stream.STEP_NOISE, *k) for k in keys]

    # ------------------------------------------------------------------ training
    @classmethod
    def training_stages(cls, requested: Sequence[str]) -> tuple[str, ...]:
        """The stages a training run trains, in order, given a config's ``stages``.

        A method of one stage trains it whatever ``requested`` says (the config
        refuses ``stages`` for it); a method of several trains those of its
        stages that ``requested`` names.
        """
        if len(cls.stages) == 1:
            return cls.stages
        return tuple(s for s in cls.stages if s in requested)

    @classmethod
    def window_factors(cls, arch: dict[str, Any]) -> WindowFactors:
        """How much the networks of ``arch`` (as [`new_net`][new_net] takes it) coarsen a window."""
        return WindowFactors()

    def before_stage(
        self,
        stage: str,
        sample: Callable[[int], Iterable[TrainBatch]],
        settings: TrainSettings,
        reduce: Callable[[Tensor], Tensor],
    ) -> dict[str, Any]:
        """Spec fields to set before ``stage`` trains from scratch (not when it resumes).

        Parameters
        ----------
        stage
            The stage about to train (the networks of the earlier ones are trained).
        sample
            ``sample(n)``: training batches of this rank holding (at least)
            ``n`` windows, or one epoch when that is fewer.
        settings
            The training settings.
        reduce
            Sums a tensor over the ranks (itself on one rank).

        Returns
        -------
        dict
            The [`ModelSpec`][sparsediff.method.spec.ModelSpec] fields to change
            (none by default).
        """
        return {}

    def stage_estimate(
        self, stage: str, inputs: Tensor, positions: Sequence[int], opts: FillOptions
    ) -> Tensor:
        """The estimate the in-training evaluation scores while ``stage`` trains.

        By default the mean of an ``opts.members`` ensemble of
        [`complete_parts`][complete_parts] (the fill's code path), member ``k``
        of row ``i`` keyed by ``(positions[i], k)``.
        """
        members = opts.members
        keys = [(p, k) for p in positions for k in range(members)]
        centre, pert = self.complete_parts(inputs, keys, opts, repeats=members)
        return (centre + pert).view(-1, members, *centre.shape[1:]).mean(1)

    def uncalibrated(self) -> str | None:
        """Why [`calibrate`][calibrate] fits nothing for this model (``None``: it fits).

        The line is what the model records as its ``calibration``.
        """
        return f"none: a {self.mode} model has no calibration"

    def calibrate(
        self,
        batches: list[TrainBatch],
        settings: TrainSettings,
        *,
        hide: HideSpec,
        members: int,
        steps: int,
        device: torch.device | str = "cpu",
        where: str = "validation",
        progress: bool | None = False,
        variability: bool = False,
        spread_fit: SpreadFit | None = None,
    ) -> tuple[dict[str, object], str]:
        """Fit the calibration on ``batches`` with ``hide`` hidden (data no net was trained on).

        Parameters
        ----------
        batches
            The crops to hide points in (keyed by their positions).
        settings
            Training settings (seed, context dropping).
        hide
            What to hide.
        members, steps
            Ensemble size and sampler steps of an ensemble fit.
        device
            Where to run.
        where
            What the batches are, for the record (``"validation"`` or ``"input"``).
        progress
            Show a bar over the batches (``None``: when interactive).
        variability
            Also let the spread follow the local variability of the data
            ([`sparsediff.method.variability`][sparsediff.method.variability]; the
            fit chooses its power, 0 included).
        spread_fit
            Noise in the hidden values, thin bins' rule ([`SpreadFit`][SpreadFit]; default: none).

        Returns
        -------
        (updates, description)
            The spec fields to change and one line for the model record. By
            default none, and the reason ([`uncalibrated`][uncalibrated]).
        """
        return {}, self.uncalibrated() or "none"

    @classmethod
    def new_net(cls, stage: str, spec: ModelSpec, arch: dict[str, Any]) -> nn.Module:
        """A fresh network for ``stage`` (``arch``: the architecture settings of the config)."""
        raise NotImplementedError

    def objective(self, stage: str, net: nn.Module, settings: TrainSettings) -> nn.Module:
        """The per-sample training objective of ``stage`` around the trainable ``net``."""
        raise NotImplementedError

    def prepare(
        self,
        stage: str,
        batch: TrainBatch,
        settings: TrainSettings,
        *,
        purpose: int = Stream.HIDE,
    ) -> dict[str, Any]:
        """Keyword arguments of the stage objective for one batch (keyed draws)."""
        raise NotImplementedError

    @staticmethod
    def diffusion_args(
        x0: Tensor,
        cond: Tensor,
        positions: Sequence[int],
        settings: TrainSettings,
        stage_key: int,
        weight: Tensor | None = None,
    ) -> dict[str, Any]:
        """The prior objective's arguments: keyed noise levels, noise and condition dropout.

        Row ``i`` draws its noise level and noise from ``(seed, DIFFUSION,
        stage_key, positions[i])`` and whether its condition is dropped from
        ``(seed, COND_DROP, stage_key, positions[i])``.
        """
        from sparsediff.diffusion.losses import get_loss

        seed = settings.seed
        loss_fn = get_loss(settings.objective)
        gens = [generator_for(seed, Stream.DIFFUSION, stage_key, p) for p in positions]
        levels = torch.cat([loss_fn.sample_noise_level(1, generator=g) for g in gens])
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens])
        keys = [generator_for(seed, Stream.COND_DROP, stage_key, p) for p in positions]
        drop = torch.tensor(
            [float(torch.rand((), generator=g)) < settings.cond_dropout for g in keys],
            device=x0.device,
        ).view(-1, *([1] * (cond.ndim - 1)))
        return {
            "x0": x0,
            "cond": torch.where(drop, torch.zeros_like(cond), cond),
            "noise_level": levels.to(x0.device),
            "noise": noise.to(x0.device).to(x0.dtype),
            "weight": weight,
        }

    def windows(
        self,
        batch: TrainBatch,
        hide: HideSpec,
        settings: TrainSettings,
        *,
        stream: int,
        stage_key: int,
        hide_context: bool = True,
    ) -> Windows:
        """Hide points of a batch of crops and build the network inputs of their windows.

        Every draw of row ``i`` is keyed by ``(seed, stream, stage_key,
        batch.positions[i], ...)``: the hidden share and shape, the hidden
        points of each context frame, and whether a context frame is dropped
        whole (``settings.context_drop``). The first guess sees the whole crop.
        ``hide_context=False`` takes the context frames as they are (no point
        hidden, none dropped), as a fill sees them.
        """
        seed = settings.seed
        n = batch.values.shape[0]
        crop = tuple(batch.values.shape[2:])
        c = batch.values.shape[1]
        keeps = []
        for i, p in enumerate(batch.positions):
            donor = None if batch.donor is None else np.asarray(batch.donor[i].cpu().numpy().all(0))
            keeps.append(_hide_keep(crop, hide, donor, seed, stream, stage_key, p))
        keep = torch.from_numpy(np.stack(keeps))[:, None].expand(n, c, *crop)
        keep = keep.to(batch.observed.device)
        shown = batch.observed & keep
        ctx = ctx_shown = None
        k_ctx = self.spec.n_context
        if k_ctx and not hide_context:
            ctx, ctx_shown = batch.context, batch.context_observed
        elif k_ctx:
            assert batch.context is not None
            assert batch.context_observed is not None
            masks = []
            for p in batch.positions:
                rows = []
                for k in range(k_ctx):
                    drop = numpy_rng_for(seed, Stream.CONTEXT_DROP, stage_key, p, k).random()
                    if drop < settings.context_drop:
                        rows.append(np.zeros(crop, dtype=bool))
                    else:
                        rows.append(
                            _hide_keep(crop, hide, None, seed, Stream.CONTEXT_HIDE, stage_key, p, k)
                        )
                masks.append(np.stack(rows))
            ck = torch.from_numpy(np.stack(masks))[:, :, None].expand(n, k_ctx, c, *crop)
            ctx = batch.context
            ctx_shown = batch.context_observed & ck.to(batch.observed.device)
        frames = Frames(batch.values, shown, batch.active, ctx, ctx_shown, batch.basis)
        frames.eof_prior, frames.outside = batch.eof_prior, batch.outside
        inputs = self.inputs(frames)
        window = [slice(h, h + w) for h, w in zip(batch.halo, self.spec.window, strict=True)]
        cut = (slice(None), slice(None), *window)
        observed = batch.observed[cut]
        return Windows(
            inputs=inputs[cut],
            values=batch.values[cut],
            observed=observed,
            scored=observed & ~keep[cut],
        )
