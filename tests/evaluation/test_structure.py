"""Multivariate scores, gap spectra and the null ensembles, with known answers on synthetic data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

from sparsediff.errors import ConfigError, InputError
from sparsediff.evaluation.baselines import CondSim, GuessNoise, guess_only
from sparsediff.evaluation.evaluate import evaluate
from sparsediff.evaluation.fillers import ModelFiller
from sparsediff.evaluation.holdout import make_holdout
from sparsediff.evaluation.metrics import (
    band_ratios,
    energy_score,
    gap_regions,
    gap_spectrum_ratio,
    multivariate_scores,
    variogram_score,
)
from tests.evaluation.conftest import DIMS

torch.set_num_threads(1)

N, T, K = 32, 6, 16
SPATIAL = ("y", "x")


def _smooth_fields(rng: np.random.Generator, lead: tuple[int, ...]) -> np.ndarray:
    """Stationary Gaussian fields with a Gaussian spectrum (correlation length ~3 cells)."""
    ky = np.fft.fftfreq(N)[:, None]
    kx = np.fft.fftfreq(N)[None, :]
    spectrum = np.exp(-(ky**2 + kx**2) / (2 * 0.05**2))
    white = rng.standard_normal((*lead, N, N))
    return np.real(np.fft.ifft2(np.fft.fft2(white) * spectrum)) / 0.05


def _case(seed: int = 0) -> tuple[xr.DataArray, xr.DataArray, np.ndarray]:
    """A truth, a mask of two boxes per step, and K members from the truth's own law."""
    rng = np.random.default_rng(seed)
    truth = xr.DataArray(_smooth_fields(rng, (T,)), dims=("t", *SPATIAL))
    mask = np.zeros((T, N, N), dtype=bool)
    mask[:, 4:14, 6:16] = True
    mask[:, 20:28, 18:30] = True
    members = _smooth_fields(rng, (K, T))
    return truth, xr.DataArray(mask, dims=truth.dims), members


def _ens(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=("member", "t", *SPATIAL))


# --------------------------------------------------------------------------- scores


def test_gap_regions_are_the_connected_blobs_of_each_slice() -> None:
    _, mask, _ = _case()
    regions = gap_regions(mask, dims=SPATIAL, max_points=1000)
    assert len(regions) == 2 * T
    assert sorted({r.size for r in regions}) == [96, 100]
    # two boxes touching along time only are separate regions (connected over y, x only)
    capped = gap_regions(mask, dims=SPATIAL, max_points=50, seed=1)
    assert all(r.size == 50 for r in capped)
    assert all(np.asarray(mask.values).reshape(-1)[r].all() for r in capped)
    with pytest.raises(InputError, match="not in the mask"):
        gap_regions(mask, dims=("z", "x"))


def test_a_perfect_ensemble_scores_zero_and_a_constant_offset_scores_its_size() -> None:
    truth, mask, _ = _case()
    perfect = _ens(np.broadcast_to(truth.values, (K, T, N, N)))
    scores = multivariate_scores(perfect, truth, mask, dims=SPATIAL)
    assert scores == {"energy_score": 0.0, "variogram_score": 0.0, "n_regions": 2 * T}
    # one member off by 0.7 everywhere: ||x - y|| / sqrt(D) = 0.7, and the differences
    # between points are the truth's, so the variogram score is 0
    shifted = _ens(truth.values[None] + 0.7)
    assert energy_score(shifted, truth, mask, dims=SPATIAL) == pytest.approx(0.7, rel=1e-12)
    assert variogram_score(shifted, truth, mask, dims=SPATIAL) == pytest.approx(0.0, abs=1e-20)


def test_members_from_the_true_covariance_beat_iid_noise_of_the_same_spread() -> None:
    truth, mask, members = _case()
    rng = np.random.default_rng(7)
    iid = rng.standard_normal(members.shape) * members.std(axis=0, ddof=1).mean()
    # same marginal spread, to within sampling noise
    assert members.std() == pytest.approx(iid.std(), rel=0.05)
    structured = multivariate_scores(_ens(members), truth, mask, dims=SPATIAL)
    noise = multivariate_scores(_ens(iid), truth, mask, dims=SPATIAL)
    assert structured["variogram_score"] < 0.8 * noise["variogram_score"]
    assert structured["energy_score"] < noise["energy_score"]


def test_a_nan_inside_a_region_makes_the_scores_nan() -> None:
    truth, mask, members = _case()
    holey = members.copy()
    holey[0, 0, 5, 7] = np.nan
    scores = multivariate_scores(_ens(holey), truth, mask, dims=SPATIAL)
    assert np.isnan(scores["energy_score"])
    assert np.isnan(scores["variogram_score"])


def test_gap_spectrum_ratio_of_known_fields() -> None:
    truth, mask, _ = _case()
    same = gap_spectrum_ratio(_ens(truth.values[None]), truth, mask, dims=SPATIAL)
    np.testing.assert_allclose(same.values, 1.0, rtol=1e-12)
    # twice the anomaly (and any offset: each slice is de-meaned in the gaps): 4x the power
    doubled = _ens(2.0 * truth.values[None] + 3.0)
    ratio = gap_spectrum_ratio(doubled, truth, mask, dims=SPATIAL)
    np.testing.assert_allclose(ratio.values, 4.0, rtol=1e-9)
    # on rough (white) fields: a smoothed ensemble lacks power at high wavenumbers only
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    white = xr.DataArray(rng.standard_normal((T, N, N)), dims=truth.dims)
    smooth = gaussian_filter(rng.standard_normal((K, T, N, N)), sigma=(0, 0, 1.5, 1.5))
    low, _, high = band_ratios(gap_spectrum_ratio(_ens(smooth), white, mask, dims=SPATIAL))
    assert high < 0.1 * low
    rough = rng.standard_normal((K, T, N, N))
    bands = band_ratios(gap_spectrum_ratio(_ens(rough), white, mask, dims=SPATIAL))
    assert bands[2] == pytest.approx(1.0, rel=0.1)  # many bins: little sampling noise there


# --------------------------------------------------------------------------- null ensembles


def test_condsim_draws_conditioned_fields_with_the_data_s_structure() -> None:
    truth, _, _ = _case(seed=2)
    hidden = np.zeros((T, N, N), dtype=bool)
    hidden[:, 8:20, 8:24] = True
    data = truth.where(~xr.DataArray(hidden, dims=truth.dims)).to_dataset(name="v")
    invalid = {"v": xr.zeros_like(truth, dtype=bool)}
    sim = CondSim(members=6, seed=0, max_cond=200)
    out = sim.fill(data, variables=["v"], dims=SPATIAL, invalid=invalid, region={})
    ens = out["v"]
    assert ens.sizes == {"member": 6, "t": T, "y": N, "x": N}
    # shown points are copied back bit for bit; every gap is drawn
    shown = np.broadcast_to(~hidden, ens.shape)
    np.testing.assert_array_equal(
        ens.values[shown], np.broadcast_to(truth.values, ens.shape)[shown]
    )
    assert np.isfinite(ens.values).all()
    # members differ inside the gap and are keyed by the seed
    assert float(ens.std("member").values[hidden].mean()) > 0.05 * float(truth.std())
    again = sim.fill(data, variables=["v"], dims=SPATIAL, invalid=invalid, region={})
    xr.testing.assert_identical(out, again)
    # conditioned on smooth data, the draws are smooth too: they beat iid noise of their own
    # spread on the variogram score
    mask = xr.DataArray(hidden, dims=truth.dims)
    spread = ens.std("member").where(mask).mean()
    rng = np.random.default_rng(0)
    iid = ens.mean("member") + spread * xr.DataArray(rng.standard_normal(ens.shape), dims=ens.dims)
    a = variogram_score(ens, truth, mask, dims=SPATIAL)
    b = variogram_score(iid.transpose(*ens.dims), truth, mask, dims=SPATIAL)
    assert a < b
    with pytest.raises(ConfigError, match="min_cond"):
        CondSim(members=2, max_cond=2)


def test_guess_noise_is_the_first_guess_plus_unit_noise_of_the_model_spread(
    trained: dict[str, Any], ostia_eval: xr.Dataset
) -> None:
    model = trained["latent"]
    data = ostia_eval.isel(time=slice(16, 24))
    gappy, _ = make_holdout(data, "cloud:0.3", dims=DIMS, seed=0)
    var = "surface_temperature"
    invalid = {var: data[var].isnull().all("time").broadcast_like(data[var])}
    region = {"time": slice(2, 8)}
    kw: dict[str, Any] = {"variables": [var], "dims": DIMS, "invalid": invalid, "region": region}
    mf = ModelFiller(model, members=4, steps=3, seed=0, device="cpu")
    null = GuessNoise(mf, seed=0).fill(gappy, **kw)[var]
    members = mf.fill(gappy, **kw)[var]
    gf = ModelFiller(guess_only(model), members=1, steps=3, seed=0, device="cpu")
    guess = gf.fill(gappy, **kw)[var].isel(member=0, drop=True)
    given = gappy[var].isel(region)
    # observed points bit for bit, invalid (land) NaN
    seen = given.notnull()
    xr.testing.assert_equal(
        null.where(seen).transpose(*null.dims),
        given.where(seen).broadcast_like(null).transpose(*null.dims),
    )
    assert bool(null.where(invalid[var].isel(region)).isnull().all())
    # at the gaps: (member - first guess) / model spread is standard normal
    spread = members.std("member", ddof=1)
    gap = given.isnull() & ~invalid[var].isel(region) & (spread > 0)
    z = ((null - guess) / spread).where(gap).values
    z = z[np.isfinite(z)]
    assert z.size > 2000
    assert abs(z.mean()) < 0.06
    assert z.std() == pytest.approx(1.0, abs=0.05)
    # the model's ensemble is filled once: the same call again returns the last result,
    # other data (an equal copy) are filled again, to the same values
    first = mf.fill(gappy, **kw)
    assert mf.fill(gappy, **kw) is first
    other = mf.fill(gappy.copy(deep=True), **kw)
    assert other is not first
    xr.testing.assert_equal(other[var], first[var])
    assert mf.fill(gappy, **{**kw, "region": {"time": slice(3, 8)}}) is not first
    # the pointwise spread matches the model's, the structure is gone
    with pytest.raises(InputError, match="at least 2 members"):
        GuessNoise(ModelFiller(model, members=1))


def test_evaluate_scores_the_null_ensembles_with_multivariate_scores(
    trained: dict[str, Any], ostia_eval: xr.Dataset, tmp_path: Any
) -> None:
    table = evaluate(
        ostia_eval.isel(time=slice(16, 24)),
        trained["latent"],
        holdout="cloud:0.3",
        baselines="linear,guess_noise,condsim",
        members=3,
        steps=3,
        region={"time": slice(4, 8)},
        out=tmp_path,
    )
    assert list(table["method"]) == ["sparsediff", "linear", "guess_noise", "condsim"]
    cols = ["energy_score", "variogram_score", "gap_power_low", "gap_power_mid", "gap_power_high"]
    assert np.isfinite(table[cols].to_numpy()).all()
    assert (table["n_regions"] > 0).all()
    assert table.loc[table["method"] == "guess_noise", "spread_skill"].notna().all()
    assert (tmp_path / "gap_spectra.png").stat().st_size > 10_000
    # without a model, guess_noise is skipped with a note
    alone = evaluate(
        ostia_eval.isel(time=slice(16, 24)), baselines="linear,guess_noise", dims=DIMS, seed=0
    )
    assert list(alone["method"]) == ["linear"]
    assert any("guess_noise" in n for n in alone.attrs["notes"])
