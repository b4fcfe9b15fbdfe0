"""The hand-written SSIM equals scikit-image's ``structural_similarity`` (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.evaluation.metrics import ssim

skimage_metrics = pytest.importorskip("skimage.metrics")


@pytest.mark.parametrize("shape", [(40, 56), (20, 24, 28)])
def test_ssim_matches_scikit_image(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=shape).cumsum(axis=-1)  # some structure
    pred = truth + rng.normal(scale=0.5, size=shape)
    data_range = float(truth.max() - truth.min())
    ref_map = skimage_metrics.structural_similarity(
        pred, truth, data_range=data_range, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, full=True,
    )[1]  # fmt: skip
    # scikit-image averages its map away from the border (the window's half width, 5)
    pad = 5
    inner = np.zeros(shape, dtype=bool)
    inner[tuple(slice(pad, n - pad) for n in shape)] = True
    dims = [f"d{i}" for i in range(len(shape))]
    got = ssim(
        xr.DataArray(pred, dims=dims),
        xr.DataArray(truth, dims=dims),
        xr.DataArray(inner, dims=dims),
        data_range=data_range,
    )
    assert got == pytest.approx(float(ref_map[inner].mean()), rel=1e-9)
    whole = skimage_metrics.structural_similarity(
        pred, truth, data_range=data_range, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )  # fmt: skip
    assert got == pytest.approx(whole, rel=1e-9)
    # only the masked points count: a different mask gives the map's mean there
    half = np.zeros(shape, dtype=bool)
    half[..., : shape[-1] // 2] = True
    got_half = ssim(
        xr.DataArray(pred, dims=dims), xr.DataArray(truth, dims=dims),
        xr.DataArray(half, dims=dims), data_range=data_range,
    )  # fmt: skip
    assert got_half == pytest.approx(float(ref_map[half].mean()), rel=1e-9)


def test_power_spectrum_states_its_units() -> None:
    from sparsediff.evaluation.metrics import power_spectrum

    rng = np.random.default_rng(1)
    field = xr.DataArray(rng.normal(size=(3, 16, 16)), dims=("t", "y", "x"), attrs={"units": "K"})
    spec = power_spectrum(field, dims=("y", "x"))
    assert spec.attrs["units"] == "K^2"
    assert spec["wavenumber"].attrs["units"] == "cycles per grid point"
    field.attrs["units"] = "m s-1"
    assert power_spectrum(field, dims=("y", "x")).attrs["units"] == "(m s-1)^2"
    del field.attrs["units"]
    assert "units" not in power_spectrum(field, dims=("y", "x")).attrs
