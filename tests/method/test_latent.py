"""The latent method: one code path, keyed randomness, guidance, objectives and calibration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.errors import InputError
from sparsediff.method import build_method
from sparsediff.method.base import HideSpec, TrainBatch, TrainSettings
from sparsediff.method.calibration import solve_spread_scale
from sparsediff.method.guidance import cfg_denoiser
from sparsediff.method.inputs import Frames, build_inputs, guess_of
from sparsediff.method.objectives import CompletionObjective, per_sample_masked_mse
from sparsediff.method.options import FillOptions
from tests.filling.conftest import make_model

OPTS = FillOptions(steps=4, seed=5)


def _field(shape: tuple[int, ...] = (16, 16), seed: int = 0) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 3, shape[0]), np.linspace(0, 3, shape[1]), indexing="ij")
    values = np.sin(y) * np.cos(x) + 0.1 * rng.normal(size=shape)
    shown = rng.random(shape) > 0.3
    shown[4:10, 5:12] = False
    return (
        torch.from_numpy(values).float()[None, None],
        torch.from_numpy(shown)[None, None],
        torch.ones(1, 1, *shape, dtype=torch.bool),
    )


def _inputs(model: sparsediff.Model, n: int = 1) -> torch.Tensor:
    values, shown, active = _field()
    frames = Frames(values, shown, active)
    return model.method.inputs(frames).expand(n, -1, -1, -1).contiguous()


@pytest.fixture
def model() -> sparsediff.Model:
    return make_model(["v"], ["y", "x"], [16, 16], seed=3)


def test_a_zero_departure_returns_the_first_guess_exactly(model: sparsediff.Model) -> None:
    with torch.no_grad():
        model.nets["autoencoder"].decoder.conv_out.weight.zero_()  # type: ignore[union-attr]
        model.nets["autoencoder"].decoder.conv_out.bias.zero_()  # type: ignore[union-attr]
    inputs = _inputs(model, 3)
    out = model.method.complete(inputs, [(0, 0, 0, k) for k in range(3)], OPTS)
    guess = guess_of(inputs, 1)
    assert torch.equal(out, guess)
    # and through sparsediff.fill: the gaps hold the first guess of the whole field
    values, shown, _ = _field()
    data = np.where(shown[0, 0].numpy(), values[0, 0].numpy(), np.nan)[None]
    ds = xr.Dataset({"v": (("t", "y", "x"), data.astype("float32"))})
    filled = sparsediff.fill(ds, model, members=2, steps=2)
    expected = guess[0, 0].numpy()  # stats: mean 0, std 1
    gaps = ~shown[0, 0].numpy()
    for k in range(2):
        np.testing.assert_allclose(
            filled["v"].values[k, 0][gaps], expected[gaps], rtol=0, atol=1e-6
        )


def test_training_windows_and_fill_share_one_code_path(model: sparsediff.Model) -> None:
    values, shown, active = _field()
    method = model.method
    # a training crop that is the whole field (no halo) with nothing hidden on top
    batch = TrainBatch(values, shown, active, halo=(0, 0), positions=[7])
    settings = TrainSettings(seed=5, hide=HideSpec(rate=(0.0, 0.0), patterns=("mcar",)))
    w = method.windows(batch, settings.hide, settings, stream=1, stage_key=0)
    from_fill = method.inputs(Frames(values, shown, active))
    assert torch.equal(w.inputs, from_fill)
    keys = [(7, 0)]
    assert torch.equal(
        method.complete(w.inputs, keys, OPTS), method.complete(from_fill, keys, OPTS)
    )


def test_rows_do_not_depend_on_their_batch(model: sparsediff.Model) -> None:
    inputs = _inputs(model, 4)
    keys = [(0, 0, 0, k) for k in range(4)]
    for sampler in ("dpmpp_2m", "ancestral", "ddim"):
        opts = FillOptions(steps=4, seed=5, sampler=sampler)
        together = model.method.complete(inputs, keys, opts)
        alone = torch.cat(
            [model.method.complete(inputs[i : i + 1], keys[i : i + 1], opts) for i in range(4)]
        )
        torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_every_key_part_changes_the_sample(model: sparsediff.Model) -> None:
    inputs = _inputs(model, 1)

    def one(key: tuple[int, ...], seed: int = 5) -> torch.Tensor:
        return model.method.complete(inputs, [key], FillOptions(steps=4, seed=seed))

    base = one((1, 2, 3, 4))
    assert torch.equal(base, one((1, 2, 3, 4)))
    for other in ((0, 2, 3, 4), (1, 0, 3, 4), (1, 2, 0, 4), (1, 2, 3, 0)):
        assert not torch.allclose(base, one(other)), other
    assert not torch.allclose(base, one((1, 2, 3, 4), seed=6))


def test_classifier_free_guidance_formula() -> None:
    def prior(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return x * 0.5 + (cond.mean() if cond is not None else 0.0)

    x = torch.randn(2, 3, 4, 4)
    cond = torch.full((2, 5, 4, 4), 2.0)
    d_c = prior(x, torch.ones(2), cond)
    d_u = prior(x, torch.ones(2), torch.zeros_like(cond))
    for scale in (1.0, 2.5):
        got = cfg_denoiser(prior, scale)(x, torch.ones(2), cond)
        torch.testing.assert_close(got, d_u + scale * (d_c - d_u))


def test_data_consistency_guidance_pulls_towards_the_shown_data(
    model: sparsediff.Model,
) -> None:
    inputs = _inputs(model, 2)
    values, shown = inputs[:, :1], inputs[:, 1:2] > 0
    keys = [(0, 0, 0, k) for k in range(2)]

    def misfit(strength: float) -> float:
        model.spec = model.spec.model_copy(update={"spread_scale": 1.0})
        out = model.method.complete(inputs, keys, FillOptions(steps=6, seed=1, guidance=strength))
        return float(((out - values)[shown] ** 2).mean())

    assert misfit(20.0) < misfit(0.0)


def test_completion_objective_scores_only_the_hidden_observed_points(
    model: sparsediff.Model,
) -> None:
    from sparsediff.method.inputs import centre_inputs

    ae = model.nets["autoencoder"]
    objective = CompletionObjective(ae, kl_weight=0.0)  # type: ignore[arg-type]
    raw = _inputs(model, 2)
    inputs, offset = centre_inputs(raw, 1, 0)
    guess = guess_of(raw, 1)
    values, observed, _ = _field(seed=1)
    values, observed = values.expand(2, -1, -1, -1), observed.expand(2, -1, -1, -1)
    scored = observed & torch.zeros_like(observed).index_fill_(2, torch.arange(4, 9), True)
    eps = torch.zeros(2, *ae.latent_shape((16, 16)))  # type: ignore[operator]
    keep = torch.tensor([True, False])

    def run(v: torch.Tensor, k: torch.Tensor = keep) -> torch.Tensor:
        return objective(inputs, guess, offset, v, observed, scored, eps, k)[0]

    loss = run(values)
    # values nobody observed do not matter (NaN included): neither the encoder nor the loss
    assert torch.equal(
        run(torch.where(observed, values, torch.full_like(values, float("nan")))), loss
    )
    # observed values that are not scored feed the encoder but not the loss directly
    no_latent = torch.tensor([False] * 2)
    also = observed & ~scored
    assert torch.equal(run(values + also * 1.0, no_latent), run(values, no_latent))
    # ... but the scored values do
    assert (run(values + scored * 1.0) != loss).all()
    ref = per_sample_masked_mse(
        guess + ae.decode(inputs, torch.zeros_like(eps)),
        values,
        scored,  # type: ignore[operator]
    )
    torch.testing.assert_close(loss[1], ref[1])


def test_networks_never_see_the_level_of_the_data(model: sparsediff.Model) -> None:
    # shifting every value (a warmer climate) shifts the completion by as much, exactly
    # up to rounding: the networks see the inputs relative to the window's mean guess
    values, shown, active = _field()
    keys = [(0, 0, 0, k) for k in range(2)]
    outs = []
    for shift in (0.0, 3.0):
        inputs = model.method.inputs(Frames(values + shift, shown, active)).expand(1, -1, -1, -1)
        outs.append(model.method.complete(inputs.repeat(2, 1, 1, 1), keys, OPTS))
    torch.testing.assert_close(outs[1], outs[0] + 3.0, rtol=0, atol=1e-4)


def test_prepare_hides_points_and_keys_them_by_position(model: sparsediff.Model) -> None:
    values, observed, active = _field(seed=2)
    observed = torch.ones_like(observed)
    batch = TrainBatch(
        values.expand(3, -1, -1, -1),
        observed.expand(3, -1, -1, -1),
        active.expand(3, -1, -1, -1),
        halo=(0, 0),
        positions=[10, 11, 10],
    )
    settings = TrainSettings(seed=1, hide=HideSpec(rate=(0.3, 0.3), patterns=("boxes",)))
    args = model.method.prepare("autoencoder", batch, settings)
    shown = args["inputs"][:, 1:2] > 0
    scored = args["scored"]
    assert scored.any(dim=(1, 2, 3)).all()  # hide and reconstruct hides something
    assert not (shown & scored).any()  # what is scored was hidden from the inputs
    assert (scored | shown).all()  # everything observed is either shown or scored
    assert torch.equal(scored[0], scored[2])  # same position, same draw
    assert not torch.equal(scored[0], scored[1])


def test_spread_scale_solves_the_spread_skill_relation() -> None:
    rng = np.random.default_rng(0)
    n, k, sigma, tau = 200_000, 8, 0.5, 0.1
    err = rng.normal(0, sigma, n)  # regression - truth
    deltas = rng.normal(0, tau, (k, n))  # perturbations, too narrow by sigma / tau
    m = deltas.mean(0)
    s = solve_spread_scale(
        float((err**2).mean()),
        float((err * m).mean()),
        float((m**2).mean()),
        float(deltas.var(0, ddof=1).mean()),
        k,
    )
    assert s == pytest.approx(sigma / tau, rel=0.02)
    members = s * deltas
    mean = err + members.mean(0)
    spread = np.sqrt((k + 1) / k * members.var(0, ddof=1).mean())
    assert spread / np.sqrt((mean**2).mean()) == pytest.approx(1.0, rel=1e-6)


def test_build_method_checks_the_mode(model: sparsediff.Model) -> None:
    from sparsediff.errors import ConfigError
    from sparsediff.method.pixel import PixelMethod

    assert build_method(model.spec).mode == "latent"
    with pytest.raises(ConfigError, match="cannot run a 'latent' model"):
        PixelMethod(model.spec)
    pixel = make_model(["v"], ["y", "x"], [16, 16], mode="pixel")
    del pixel.nets["prior"]
    with pytest.raises(ConfigError, match="no trained prior"):
        pixel.method.complete(torch.zeros(1, 4, 16, 16), [(0,)], OPTS)


def test_calibration_goes_through_the_method(model: sparsediff.Model) -> None:
    latent = model.method
    assert latent.calibrates
    assert latent.uncalibrated() is None
    without_prior = build_method(model.spec, {"autoencoder": model.nets["autoencoder"]})
    assert without_prior.uncalibrated() == "none: no latent prior"
    assert without_prior.calibrate([], TrainSettings(), hide=HideSpec(), members=2, steps=2) == (
        {},
        "none: no latent prior",
    )
    pixel = make_model(["v"], ["y", "x"], [16, 16], mode="pixel").method
    assert not pixel.calibrates
    reason = "none: a pixel model has no calibration"
    assert pixel.uncalibrated() == reason
    assert pixel.calibrate([], TrainSettings(), hide=HideSpec(), members=2, steps=2) == ({}, reason)


@pytest.mark.parametrize("shape", [(9, 17), (6, 7, 8)])
def test_distance_to_shown_is_the_chessboard_distance(shape: tuple[int, ...]) -> None:
    from scipy.ndimage import distance_transform_cdt

    from sparsediff.method.inputs import distance_to_shown

    rng = np.random.default_rng(1)
    shown = rng.random(shape) > 0.93
    shown.flat[0] = True
    got = distance_to_shown(torch.from_numpy(shown)[None, None])[0, 0].numpy()
    expected = distance_transform_cdt(~shown, metric="chessboard")
    np.testing.assert_array_equal(got, expected)


def test_spread_factor_follows_the_distance_bins(model: sparsediff.Model) -> None:
    from sparsediff.method.inputs import distance_of

    model.spec = model.spec.model_copy(
        update={"spread_bins": [0.0, 2.0, 4.0], "spread_scales": [1.0, 3.0, 9.0]}
    )
    inputs = _inputs(model, 1)
    dist = distance_of(inputs, 1)
    factor = model.method.spread(inputs)  # type: ignore[attr-defined]
    expected = torch.where(dist < 2, 1.0, torch.where(dist < 4, 3.0, 9.0))
    assert torch.allclose(dist, dist.round(), atol=1e-4)  # whole grid steps survive the scaling
    torch.testing.assert_close(factor, expected)
    assert set(torch.unique(factor).tolist()) >= {1.0, 3.0}


def test_spread_factor_follows_the_local_distance_bins(model: sparsediff.Model) -> None:
    from sparsediff.method.inputs import distance_of, local_distance_of

    bins = {"spread_bins": [0.0, 0.5, 1.5], "spread_scales": [1.0, 3.0, 9.0]}
    model.spec = model.spec.model_copy(update={**bins, "spread_covariate": "local_distance"})
    inputs = _inputs(model, 1)
    local = local_distance_of(inputs, 1)
    factor = model.method.spread(inputs)  # type: ignore[attr-defined]
    expected = torch.where(local < 0.5, 1.0, torch.where(local < 1.5, 3.0, 9.0))
    torch.testing.assert_close(factor, expected)
    # the same bins over the plain distance give other factors on these inputs
    model.spec = model.spec.model_copy(update={"spread_covariate": "distance"})
    dist = distance_of(inputs, 1)
    plain = torch.where(dist < 0.5, 1.0, torch.where(dist < 1.5, 3.0, 9.0))
    torch.testing.assert_close(model.method.spread(inputs), plain)  # type: ignore[attr-defined]
    assert not torch.equal(plain, expected)


@pytest.mark.parametrize("mode", ["latent", "pixel"])
def test_members_sharing_a_window(mode: str) -> None:
    model = make_model(["v"], ["y", "x"], [16, 16], mode=mode, seed=4)
    inputs = torch.cat([_inputs(model, 1), _inputs(model, 1) * 0.5])
    keys = [(w, 0, 0, k) for w in range(2) for k in range(3)]
    centre, pert = model.method.complete_parts(inputs, keys, OPTS, repeats=3)
    rows_c, rows_p = model.method.complete_parts(inputs.repeat_interleave(3, dim=0), keys, OPTS)
    torch.testing.assert_close(centre, rows_c, rtol=1e-4, atol=1e-5)
    if mode == "pixel":
        torch.testing.assert_close(pert, rows_p, rtol=1e-4, atol=1e-5)
    else:
        # the members of a window are centred on the regression, variance kept unbiased
        p = pert.view(2, 3, *pert.shape[1:])
        r = rows_p.view(2, 3, *rows_p.shape[1:])
        expected = (r - r.mean(1, keepdim=True)) * (3 / 2) ** 0.5
        torch.testing.assert_close(p, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(p.mean(1), torch.zeros_like(p[:, 0]), rtol=0, atol=1e-5)
        assert p.abs().max() > 0
    with pytest.raises(ValueError, match="keys"):
        model.method.complete_parts(inputs, keys[:5], OPTS, repeats=3)


def test_spread_bins_are_monotone_fill_gaps_and_continue_the_growth() -> None:
    from sparsediff.method.calibration import MAX_GROWTH, MIN_POINTS, bin_scales, solve_spread_scale

    n = float(MIN_POINTS)

    def bin_(err2: float, var: float, count: float = n) -> list[float]:
        return [err2 * count, 0.0, 0.0, var * count, count]

    k = 8

    def fit(err2: float) -> float:
        return solve_spread_scale(err2, 0.0, 0.0, 1.0, k)

    s0, s1 = fit(1.0), fit(4.0)
    sums = [bin_(1.0, 1.0), bin_(4.0, 1.0), bin_(9.0, 1.0, count=n / 2), bin_(0.0, 0.0, 0.0)]
    scales = bin_scales(sums, k, overall=5.0)
    assert scales[:2] == pytest.approx([s0, s1])
    growth = min(s1 / s0, MAX_GROWTH)
    assert scales[2] == pytest.approx(s1 * growth)  # too few points: extrapolated
    assert scales[3] == pytest.approx(s1 * growth**2)
    # nothing fitted: the overall factor everywhere; one bin fitted: held flat
    assert bin_scales([bin_(1.0, 1.0, 0.0)] * 3, k, overall=5.0) == [5.0, 5.0, 5.0]
    assert bin_scales([bin_(1.0, 1.0), bin_(1.0, 1.0, 0.0)], k, overall=5.0) == [s0, s0]
    # a dip is pooled with its neighbour (equal counts: the mean error), never decreasing
    dip = bin_scales([bin_(1.0, 1.0), bin_(9.0, 1.0), bin_(1.0, 1.0)], k, overall=5.0)
    assert dip == pytest.approx([s0, fit(5.0), fit(5.0)])
    # a thin first bin takes the first fitted factor; a thin bin between two fitted holds
    thin = bin_scales(
        [bin_(1.0, 1.0, 1.0), bin_(1.0, 1.0), bin_(1.0, 1.0, 1.0), bin_(4.0, 1.0)], k, 5.0
    )
    assert thin == pytest.approx([s0, s0, s0, s1])
    # the growth is per bin between the two last groups (two bins apart here)
    far = bin_scales([bin_(1.0, 1.0), bin_(0.0, 0.0, 0.0), bin_(4.0, 1.0), bin_(0, 0, 0)], k, 5.0)
    assert far[3] == pytest.approx(s1 * min(math.sqrt(s1 / s0), MAX_GROWTH))


def test_local_distance_tells_a_lone_gap_from_the_edge_of_a_box() -> None:
    from sparsediff.method.inputs import distance_of, local_distance_of, spread_covariate

    shown = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    shown[0, 0, 3, 3] = False  # a lone hidden point
    shown[0, 0, 6:14, 6:14] = False  # a box
    frames = Frames(torch.zeros(1, 1, 16, 16), shown, torch.ones_like(shown))
    inputs = build_inputs(frames, guess="laplace", n_context=0)
    dist = distance_of(inputs, 1)
    local = local_distance_of(inputs, 1)
    assert dist[0, 0, 3, 3] == dist[0, 0, 6, 9] == 1  # both one step from the data
    assert local[0, 0, 3, 3] < 0.2 < 0.9 < local[0, 0, 6, 9]
    assert float(local[0, 0, 9, 9]) == pytest.approx(
        float(dist[0, 0, 9, 9]), abs=0.6
    )  # deep: about the distance
    torch.testing.assert_close(spread_covariate(inputs, 1, "distance"), dist)
    torch.testing.assert_close(spread_covariate(inputs, 1, "local_distance"), local)
    with pytest.raises(InputError, match="spread covariate"):
        spread_covariate(inputs, 1, "exit_time")


def test_distance_of_gives_whole_grid_steps_exactly_up_to_the_cap() -> None:
    """Planted bug (issue 19 round 2): the distance read back from the inputs unrounded.

    The inputs hold ``log1p(d) / log1p(cap)`` in float32; read back without
    rounding, distance 12 comes out as 11.999999 and falls into the spread bin
    below the edge at 12 (``bucketize(..., right=True)``).
    """
    from sparsediff.method.calibration import COVARIATE_BINS
    from sparsediff.method.inputs import DISTANCE_CAP, distance_of, distance_to_shown

    shape = (1, 1, 8, DISTANCE_CAP + 8)
    shown = torch.zeros(shape, dtype=torch.bool)
    shown[..., 0] = True  # distances 0, 1, ..., up to the cap along x
    frames = Frames(torch.zeros(shape), shown, torch.ones(shape, dtype=torch.bool))
    inputs = build_inputs(frames, guess="zero", n_context=0)
    got = distance_of(inputs, 1)
    expected = distance_to_shown(shown)
    assert set(expected.unique().tolist()) == set(range(DISTANCE_CAP + 1))
    assert torch.equal(got, expected)
    edges = torch.tensor(COVARIATE_BINS[1:], dtype=got.dtype)
    at_edges = torch.isin(expected, edges)
    assert torch.equal(
        torch.bucketize(got[at_edges], edges, right=True),
        torch.bucketize(expected[at_edges], edges, right=True),
    )


def test_calibration_bins_are_half_open_as_the_fill_reads_them(model: sparsediff.Model) -> None:
    """Planted bug (issue 19 round 2): ``bucketize(right=False)`` in the spread fit.

    The fill applies factor ``i`` where the covariate lies in ``[bins[i],
    bins[i + 1])``; the fit must count the hidden points the same way, the
    ones exactly at an edge included (distances are whole steps, so many are).
    """
    from sparsediff.method.calibration import DISTANCE_BINS, fit_spread_scale
    from sparsediff.method.inputs import distance_of
    from sparsediff.rng import Stream

    values, observed, active = _field(shape=(24, 24), seed=4)
    observed = torch.ones_like(observed)
    batch = TrainBatch(
        values.expand(2, -1, -1, -1),
        observed.expand(2, -1, -1, -1),
        active.expand(2, -1, -1, -1),
        halo=(0, 0),
        positions=[3, 4],
    )
    settings = TrainSettings(seed=1, hide=HideSpec(rate=(0.6, 0.6), patterns=("boxes",)))
    cal = fit_spread_scale(
        model.method, [batch], settings, members=2, steps=2, covariate="distance"
    )
    assert cal is not None
    assert cal.bins == DISTANCE_BINS
    raw_spec = model.spec.model_copy(
        update={"spread_scale": 1.0, "spread_bins": [], "spread_scales": []}
    )
    raw = build_method(raw_spec, model.method.nets)
    w = raw.windows(batch, settings.hide, settings, stream=Stream.CALIBRATION, stage_key=0)
    dist = distance_of(w.inputs, 1)[w.scored]
    assert bool(torch.isin(dist, torch.tensor(DISTANCE_BINS[1:])).any())  # points at edges
    edges = [*DISTANCE_BINS, math.inf]
    expected = tuple(
        int(((dist >= lo) & (dist < hi)).sum()) for lo, hi in itertools.pairwise(edges)
    )
    assert cal.counts == expected
