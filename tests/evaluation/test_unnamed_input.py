"""evaluate takes an unnamed DataArray as fill does: as the model's one variable (issue 19)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

import sparsediff
from tests.filling.conftest import make_model


def test_evaluate_takes_the_unnamed_dataarray_that_fill_takes() -> None:
    model = make_model(["sst"], ["y", "x"], [8, 8], mean=20.0, std=5.0)
    rng = np.random.default_rng(0)
    values = rng.normal(20.0, 5.0, (3, 12, 16)).astype("float32")
    values[rng.random(values.shape) < 0.2] = np.nan
    unnamed = xr.DataArray(values, dims=("time", "y", "x"))
    assert "sst" in sparsediff.fill(unnamed, model)
    table = sparsediff.evaluate(unnamed, model, holdout="mcar:0.3", baselines="", steps=2)
    named = sparsediff.evaluate(
        unnamed.rename("sst"), model, holdout="mcar:0.3", baselines="", steps=2
    )
    assert isinstance(table, pd.DataFrame)
    assert set(table["variable"]) == {"sst"}
    np.testing.assert_allclose(table["rmse"], named["rmse"])
