"""One named test for each planted bug that got through the suite (issue 19, "Mutation
survivors"). Each docstring says which one-line change the test catches."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.data.alignment import align_to
from sparsediff.data.composite import composite
from sparsediff.data.masks import GAP, INVALID, OBSERVED, MissingRule
from sparsediff.evaluation.metrics import crps
from sparsediff.method import build_method
from sparsediff.method.inputs import Frames, guess_of
from sparsediff.method.options import FillOptions
from tests.filling.conftest import make_model


def test_composite_casts_to_the_dtype_it_is_given() -> None:
    """Caught: ``composite`` ignoring ``dtype`` (only the baseline path passes one)."""
    rng = np.random.default_rng(0)
    original = rng.normal(20.0, 5.0, (4, 6)).astype(np.float32)
    state = rng.choice([OBSERVED, GAP, INVALID], size=(4, 6)).astype(np.uint8)
    filled = rng.normal(20.0, 5.0, (2, 4, 6))  # float64, two members
    out = composite(filled.copy(), original, state, dtype=np.float32)
    assert out.dtype == np.float32
    obs = np.broadcast_to(state == OBSERVED, out.shape)
    np.testing.assert_array_equal(out[obs], np.broadcast_to(original, out.shape)[obs])
    assert np.isnan(out[np.broadcast_to(state == INVALID, out.shape)]).all()
    gaps = np.broadcast_to(state == GAP, out.shape)
    np.testing.assert_array_equal(out[gaps], filled.astype(np.float32)[gaps])
    same = composite(filled, original, state)  # no dtype: in place, filled's dtype
    assert same is filled
    assert same.dtype == np.float64


@pytest.mark.parametrize(
    ("attrs", "kept", "missing"),
    [
        ({"valid_min": np.int16(0)}, [273.2, 300.0], [200.0, 273.1]),
        ({"valid_max": np.int16(5000)}, [300.0, 323.1], [323.2, 400.0]),
        ({"valid_range": np.array([0, 5000], "int16")}, [273.2, 323.1], [200.0, 330.0]),
    ],
    ids=["valid_min", "valid_max", "valid_range"],
)
def test_packed_valid_bounds_are_unpacked_with_scale_and_offset(
    attrs: dict, kept: list[float], missing: list[float]
) -> None:
    """Caught: a packed ``valid_min`` (or max, range) unpacked without its ``add_offset``.

    Packed kelvin: ``value = packed * 0.01 + 273.15``; packed 0 is 273.15 K, 5000 is 323.15 K.
    """
    var = xr.DataArray(np.array(kept + missing), dims="x", attrs=attrs)
    var.encoding = {"scale_factor": 0.01, "add_offset": 273.15, "dtype": "int16"}
    ok = MissingRule.of(var).usable(var.values)
    np.testing.assert_array_equal(ok, [True] * len(kept) + [False] * len(missing))


def test_departure_scale_scales_the_regression_and_not_the_perturbation() -> None:
    """Caught: any change to how ``departure_scale`` enters the latent completion.

    The centre is ``guess + s * departure`` (linear in s, the first guess at s = 0),
    the deterministic ``regression`` is that centre, and the perturbation does not
    depend on s.
    """
    model = make_model(["v"], ["y", "x"], [16, 16], seed=3)
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(size=(1, 1, 16, 16))).float()
    shown = torch.from_numpy(rng.random((1, 1, 16, 16)) > 0.4)
    frames = Frames(values, shown, torch.ones(1, 1, 16, 16, dtype=torch.bool))
    inputs = model.method.inputs(frames).expand(2, -1, -1, -1).contiguous()
    keys = [(0, 0, 0, k) for k in range(2)]
    opts = FillOptions(steps=3, seed=1)
    guess = guess_of(inputs, 1)
    parts, regressions = {}, {}
    for s in (0.0, 0.5, 1.0, 2.0):
        method = build_method(model.spec.model_copy(update={"departure_scale": s}), model.nets)
        parts[s] = method.complete_parts(inputs, keys, opts)
        regressions[s] = method.regression(inputs)
    departure = parts[1.0][0] - guess
    assert float(departure.abs().max()) > 1e-3  # the test can see a departure
    for s, (centre, perturbation) in parts.items():
        torch.testing.assert_close(centre, guess + s * departure, rtol=0, atol=1e-5)
        torch.testing.assert_close(regressions[s], centre, rtol=0, atol=1e-5)
        torch.testing.assert_close(perturbation, parts[1.0][1], rtol=0, atol=1e-6)


def test_crps_skips_points_with_any_non_finite_member() -> None:
    """Caught: CRPS's finite check with ``any`` instead of ``all`` over the members.

    A point with one infinite member is left out (NaN), without numpy warnings; the
    others score as without it.
    """
    ens = xr.DataArray(
        np.array([[1.0, 2.0, 3.0, 0.5], [1.5, np.inf, 2.5, 1.0], [0.5, 2.5, 3.5, -1.0]]),
        dims=("member", "x"),
    )
    truth = xr.DataArray(np.zeros(4), dims="x")
    mask = xr.DataArray(np.array([True, False, True, True]), dims="x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scoringrules warns on an infinite member
        got = float(crps(ens, truth, mask, area_weighted=False))
    keep = [0, 2, 3]
    expected = float(crps(ens.isel(x=keep), truth.isel(x=keep), None, area_weighted=False))
    assert got == pytest.approx(expected, rel=1e-12)
    assert np.isfinite(got)


def test_observed_points_are_copied_back_after_the_climatology_is_added() -> None:
    """Caught: dropping the re-copy of observed points after ``add_climatology``.

    With a climatology far from the data (not within a factor 2), ``(x - c) + c`` in
    float32 is not ``x``: only the re-copy keeps the observed bits.
    """
    rng = np.random.default_rng(1)
    values = rng.normal(20.0, 5.0, (3, 10, 12)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    ds = xr.Dataset({"a": (("t", "y", "x"), values)})
    clim = rng.uniform(-700.0, 700.0, (10, 12))
    round_trip = (values - clim.astype(np.float32)) + clim.astype(np.float32)
    obs = np.isfinite(values)
    assert (round_trip[obs] != values[obs]).any()  # the test can fail
    model = make_model(["a"], ["y", "x"], [8, 8], mode="pixel")
    model.climatology = {"a": xr.DataArray(clim, dims=("y", "x"), name="a")}
    out = sparsediff.fill(ds, model, steps=1, invalid_along=None, check_values=False)
    got = out["a"].values
    np.testing.assert_array_equal(got[obs].view(np.uint32), values[obs].view(np.uint32))


def test_alignment_wraps_around_a_longitude_whose_zero_is_stored_as_minus_1e_4() -> None:
    """Caught: dropping the periodic wrap (the first and last sorted longitudes are
    neighbours; distances are taken modulo 360) in the coordinate alignment."""
    saved = np.r_[-1e-4, np.arange(5.0, 360.0, 5.0)]  # 0 deg stored as -1e-4
    field = xr.DataArray(np.arange(72.0), dims="lon", coords={"lon": saved})
    lon = np.r_[np.arange(-180.0, 0.0, 5.0), np.arange(0.0, 180.0, 5.0)]  # -180..175
    data = xr.Dataset(coords={"lon": ("lon", lon, {"units": "degrees_east"})})
    aligned = align_to(field, data, what="the climatology of 'sst'")
    expected = np.round((lon % 360.0) / 5.0) % 72
    np.testing.assert_array_equal(aligned.values, expected)
    np.testing.assert_array_equal(aligned["lon"].values, lon)
