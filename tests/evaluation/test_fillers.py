"""The fillers: models and baselines behind one interface, and evaluate's one loop over them."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import xarray as xr

from sparsediff.data import masks
from sparsediff.errors import InputError
from sparsediff.evaluation.baselines import Laplace, TimeMean
from sparsediff.evaluation.evaluate import evaluate
from sparsediff.evaluation.fillers import (
    BaselineFiller,
    Filler,
    ModelFiller,
    context_region,
    single_member,
)
from sparsediff.evaluation.holdout import make_holdout
from tests.evaluation.conftest import DIMS

REGION = {"time": slice(18, 24)}
VAR = "surface_temperature"


@pytest.fixture
def case(ostia_eval: xr.Dataset) -> tuple[xr.Dataset, dict[str, xr.DataArray]]:
    """OSTIA with boxes hidden in the region, and the invalid (land) mask."""
    gappy, _ = make_holdout(
        ostia_eval, "boxes:0.3", dims=DIMS, seed=0, invalid_along="time", region=REGION
    )
    st = masks.states(ostia_eval, [VAR], invalid_along="time")
    return gappy, {VAR: st[VAR] == masks.INVALID}


def _invariants(out: xr.Dataset, gappy: xr.Dataset, invalid: xr.DataArray) -> None:
    """Every member keeps observed points bit for bit, has NaN at invalid points, fills gaps."""
    src = gappy[VAR].isel(REGION)
    inv = invalid.isel(REGION)
    observed = src.notnull() & ~inv
    gaps = src.isnull() & ~inv
    for k in range(out.sizes["member"]):
        member = out[VAR].isel(member=k).transpose(*src.dims)
        np.testing.assert_array_equal(member.values[observed.values], src.values[observed.values])
        assert member.isnull().values[inv.values].all()
        assert np.isfinite(member.values[gaps.values]).all()


def test_baseline_filler_is_the_baseline_on_the_region_with_one_member(case) -> None:
    gappy, invalid = case
    filler = BaselineFiller(Laplace())
    assert (filler.name, filler.kind) == ("laplace", "baseline")
    assert filler.variables is None
    assert filler.dims is None
    out = filler.fill(gappy, variables=[VAR], dims=DIMS, invalid=invalid, region=REGION)
    assert out[VAR].dims == ("member", "time", "latitude", "longitude")
    assert out.sizes["member"] == 1
    _invariants(out, gappy, invalid[VAR])
    direct = Laplace().fill(gappy[VAR], dims=DIMS, invalid=invalid[VAR]).isel(REGION)
    xr.testing.assert_identical(single_member(out)[VAR], direct)
    assert BaselineFiller(TimeMean(), name="clim").name == "clim"


def test_model_filler_fills_the_region_with_members(case, trained: dict[str, Any]) -> None:
    gappy, invalid = case
    model = trained["latent"]
    filler = ModelFiller(model, "tiny", members=2, steps=2, device="cpu")
    assert (filler.name, filler.kind) == ("tiny", "model")
    assert filler.variables == (VAR,)
    assert filler.dims == DIMS
    out = filler.fill(gappy, variables=[VAR], dims=DIMS, invalid=invalid, region=REGION)
    assert out.sizes["member"] == 2
    assert out.sizes["time"] == 6
    assert f"{VAR}_fill_flag" in out  # the output of sparsediff.fill, flags and provenance
    assert "sparsediff_fill" in out.attrs
    _invariants(out, gappy, invalid[VAR])
    one = ModelFiller(model, members=1, steps=2, device="cpu")
    single = one.fill(gappy, variables=[VAR], dims=DIMS, invalid=invalid, region=REGION)
    assert single.sizes["member"] == 1
    assert "member" not in single_member(single)[VAR].dims


def test_context_region_widens_by_the_context_reach(trained: dict[str, Any]) -> None:
    model = trained["latent"]
    assert context_region(model, {"time": 24}, REGION) == (REGION, {})  # no context frames
    spec = model.spec.model_copy(update={"context_dim": "time", "context_offsets": [-2, 1]})
    ctx = dataclasses.replace(model, spec=spec)
    wide, back = context_region(ctx, {"time": 24}, REGION)
    assert wide == {"time": slice(16, 24)}  # one step past the end does not exist
    assert back == {"time": slice(2, 8)}
    assert context_region(ctx, {"time": 24}, {}) == ({}, {})


class _Repeat(Filler):
    """A two-member ensemble of identical time-mean fills (a new baseline is one class)."""

    name = "repeat"

    def fill(
        self,
        gappy: xr.Dataset,
        *,
        variables: Sequence[str],
        dims: tuple[Hashable, ...],
        invalid: Mapping[str, xr.DataArray],
        region: Mapping[Hashable, slice],
    ) -> xr.Dataset:
        one = BaselineFiller(TimeMean()).fill(
            gappy, variables=variables, dims=dims, invalid=invalid, region=region
        )
        return xr.concat([one, one], dim="member")


class _Broken(_Repeat):
    name = "broken"

    def fill(self, gappy: xr.Dataset, **kw: Any) -> xr.Dataset:
        return super().fill(gappy, **kw).isel(member=0, drop=True)


def test_evaluate_runs_any_filler_in_its_one_loop(
    ostia_eval: xr.Dataset, trained: dict[str, Any]
) -> None:
    variant = ModelFiller(trained["latent"], "variant", members=2, steps=2, device="cpu")
    land = ostia_eval[VAR].isnull().all("time")
    table = evaluate(
        ostia_eval.assign(land=land),
        models={"variant": variant},
        baselines=["time_mean", _Repeat()],
        region=REGION,
        invalid="land",
        members=3,  # not the variant's: a filler keeps its own options
        steps=2,
    )
    assert list(table["method"]) == ["variant", "time_mean", "repeat"]
    assert list(table["kind"]) == ["model", "baseline", "baseline"]
    rows = table.set_index("method")
    # the repeated time mean scores as the time mean, and its two equal members have no spread
    for col in ("rmse", "mae", "bias", "spectrum_score"):
        assert rows.loc["repeat", col] == pytest.approx(rows.loc["time_mean", col], rel=1e-12)
    assert rows.loc["repeat", "spread_skill"] == 0.0
    assert np.isfinite(rows.loc["variant", "spread_skill"])


class _Tied(_Repeat):
    """A filler tied to one variable and to spatial dims, as a trained model is."""

    name = "tied"
    variables = ("sst",)
    dims = ("y", "x")


def test_evaluate_takes_any_filler_in_models_and_names_an_unnamed_input_by_it() -> None:
    # models= takes any Filler (not only a ModelFiller); an unnamed DataArray is the
    # variable of a filler tied to one, as it is a one-variable model's
    rng = np.random.default_rng(0)
    values = rng.normal(20.0, 5.0, (6, 12, 16))
    values[rng.random(values.shape) < 0.2] = np.nan
    unnamed = xr.DataArray(values, dims=("time", "y", "x"))
    table = evaluate(unnamed, models={"tied": _Tied()}, baselines=["time_mean"], holdout="mcar:0.3")
    assert list(table["method"]) == ["tied", "time_mean"]
    assert set(table["variable"]) == {"sst"}
    rows = table.set_index("method")
    # its members are the time mean's fill: the same scores
    for col in ("rmse", "mae", "bias"):
        assert rows.loc["tied", col] == pytest.approx(rows.loc["time_mean", col], rel=1e-12)
    assert np.isfinite(rows.loc["tied", "rmse"])


def test_evaluate_refuses_a_filler_without_members_or_a_misnamed_one(
    ostia_eval: xr.Dataset, trained: dict[str, Any]
) -> None:
    with pytest.raises(InputError, match=r"filler 'broken' returned .* 'member' dim"):
        evaluate(ostia_eval, baselines=[_Broken()], dims=DIMS, region=REGION)
    variant = ModelFiller(trained["latent"], "variant")
    with pytest.raises(InputError, match="filler named 'variant'"):
        evaluate(ostia_eval, models={"other": variant}, baselines=(), region=REGION)


def test_a_model_sees_the_whole_spatial_extent_and_its_context_reach() -> None:
    from sparsediff.evaluation.fillers import context_region
    from tests.filling.conftest import make_model

    volume = make_model(["v"], ["z", "y", "x"], [8, 8, 8], mode="pixel")
    wide, back = context_region(volume, {"z": 64, "y": 32, "x": 32}, {"z": slice(48, 64)})
    # a region along a spatial dim: the model fills the whole volume, scored on the region
    assert wide == {"z": slice(0, 64)}
    assert back == {"z": slice(48, 64)}
    series = make_model(
        ["v"], ["y", "x"], [8, 8], mode="pixel", context_dim="t", context_offsets=[-1, 1]
    )
    wide, back = context_region(series, {"t": 54, "y": 8, "x": 8}, {"t": slice(48, 54)})
    assert wide == {"t": slice(47, 54)}
    assert back == {"t": slice(1, 7)}
