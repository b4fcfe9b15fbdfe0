"""The spread's scaling by the local variability of the shown data (method/variability.py)."""

from __future__ import annotations

import math

import pytest
import torch

import sparsediff
from sparsediff.method.calibration import bin_scales
from sparsediff.method.inputs import n_inputs
from sparsediff.method.variability import (
    FLOOR_SHARE,
    PRIOR_WEIGHT,
    fit_variability,
    local_variability_of,
    variability_factor,
)
from tests.filling.conftest import make_model


@pytest.fixture
def model() -> sparsediff.Model:
    return make_model(["v"], ["y", "x"], [16, 16], seed=3)


def _inputs(values: torch.Tensor, shown: torch.Tensor) -> torch.Tensor:
    """Input channels of one variable with these values and shown mask (no context)."""
    x = torch.zeros((1, n_inputs(1, 0), *values.shape))
    x[0, 0] = torch.where(shown, values, torch.zeros_like(values))
    x[0, 1] = shown.float()
    x[0, 2] = 1.0
    return x


def test_a_checkerboard_shown_everywhere_has_its_amplitude_as_local_variability() -> None:
    a = 0.7
    i, j = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    values = torch.where((i + j) % 2 == 0, a, -a) + 3.0  # the level does not count
    v = local_variability_of(_inputs(values, torch.ones(32, 32, dtype=torch.bool)), 1, 2.0)
    assert v.shape == (1, 1, 32, 32)
    torch.testing.assert_close(v[0, 0, 8:-8, 8:-8], torch.full((16, 16), a), atol=2e-3, rtol=0)


def test_a_flat_field_has_no_variability_and_its_factor_is_floored() -> None:
    values = torch.full((16, 16), 2.5)
    inputs = _inputs(values, torch.ones(16, 16, dtype=torch.bool))
    assert float(local_variability_of(inputs, 1, 1.0).abs().max()) < 1e-5
    f = variability_factor(inputs, 1, 1.0, 0.5, ref=0.2)
    torch.testing.assert_close(f, torch.full_like(f, FLOOR_SHARE**0.5))


def test_deep_in_a_gap_the_variability_is_the_windows_and_rough_parts_get_more() -> None:
    torch.manual_seed(0)
    values = torch.randn(48, 48) * 0.1
    values[:, 24:] *= 10  # the right half varies ten times more
    shown = torch.ones(48, 48, dtype=torch.bool)
    shown[:20, :20] = False  # a gap far from the rough half
    inputs = _inputs(values, shown)
    v = local_variability_of(inputs, 1, 1.0)[0, 0]
    window = float(values[shown].std(unbiased=False))
    # at the gap's centre no shown point lies within 3 sigma: the window's variability
    assert float(v[10, 10]) == pytest.approx(window, rel=1e-4)
    assert float(v[30:40, 30:40].mean()) > 5 * float(v[30:40, 5:15].mean())
    f = variability_factor(inputs, 1, 1.0, 1.0, ref=float(v.mean()))
    assert float(f[0, 0, 30:40, 30:40].mean()) > 5 * float(f[0, 0, 30:40, 5:15].mean())
    assert PRIOR_WEIGHT > 0


def test_a_3d_field_works_the_same() -> None:
    values = torch.randn(12, 12, 12)
    v = local_variability_of(_inputs(values, torch.rand(12, 12, 12) > 0.5), 1, 1.0)
    assert v.shape == (1, 1, 12, 12, 12)
    assert bool(torch.isfinite(v).all())


def _synthetic(follows: bool, n: int = 40_000) -> dict[str, object]:
    g = torch.Generator().manual_seed(1)
    v = torch.exp(torch.randn(n, generator=g, dtype=torch.float64))  # spans ~ e^±2
    size = v if follows else torch.ones_like(v)
    err = torch.randn(n, generator=g, dtype=torch.float64) * 0.3 * size
    return {
        "err": err,
        "mean_pert": torch.zeros(n, dtype=torch.float64),
        "member_var": torch.full((n,), 0.01, dtype=torch.float64),  # raw spread the same everywhere
        "which": torch.zeros(n, dtype=torch.long),
        "variability": [v],
        "n_bins": 1,
        "bin_fit": lambda sums: bin_scales(sums, 8, 1.0),
        "members": 8,
        "sigmas": (1.0,),
    }


def test_the_fit_finds_a_spread_that_follows_an_error_that_follows_the_variability() -> None:
    fit = fit_variability(**_synthetic(True))  # type: ignore[arg-type]
    assert fit.power >= 0.75
    assert fit.sigma == 1.0
    assert fit.ref > 0
    assert fit.scores[(1.0, fit.power)] < fit.scores[(1.0, 0.0)]


def test_the_fit_keeps_the_plain_factors_when_the_error_does_not_follow_it() -> None:
    fit = fit_variability(**_synthetic(False))  # type: ignore[arg-type]
    assert fit.power == 0.0
    assert fit.sigma == 0.0
    assert fit.ref == 1.0
    # its factor makes the spread match the error: s^2 (K+1)/K * 0.01 = 0.09
    assert fit.scales[0] == pytest.approx(math.sqrt(0.09 / 0.01 * 8 / 9), rel=0.03)


def test_a_model_with_a_power_multiplies_its_bin_factors_by_the_variability(
    model: sparsediff.Model,
) -> None:
    values = torch.randn(model.spec.window) * 0.5
    inputs = _inputs(values, torch.rand(*model.spec.window) > 0.3)
    assert inputs.shape[1] == n_inputs(model.spec.n_vars, model.spec.n_context)
    bins = {"spread_bins": [0.0, 2.0], "spread_scales": [1.5, 3.0]}
    model.spec = model.spec.model_copy(update=bins)
    plain = model.method.spread(inputs)  # type: ignore[attr-defined]
    model.spec = model.spec.model_copy(
        update={
            "spread_variability_sigma": 2.0,
            "spread_variability_power": 1.0,
            "spread_variability_ref": 0.25,
        }
    )
    scaled = model.method.spread(inputs)  # type: ignore[attr-defined]
    torch.testing.assert_close(scaled, plain * variability_factor(inputs, 1, 2.0, 1.0, 0.25))
    assert not torch.equal(scaled, plain)


def test_a_flat_field_or_no_width_keeps_the_plain_factors() -> None:
    case = _synthetic(True)
    plain = fit_variability(**{**case, "powers": (0.0,)})  # type: ignore[arg-type]
    flat = fit_variability(**{**case, "variability": [torch.zeros(40_000)]})  # type: ignore[arg-type]
    none = fit_variability(**{**case, "variability": [], "sigmas": ()})  # type: ignore[arg-type]
    for fit in (flat, none):
        assert fit.power == 0.0
        assert fit.scales == plain.scales
        assert fit.scores == {}


def test_a_spec_with_a_power_needs_a_width(model: sparsediff.Model) -> None:
    with pytest.raises(ValueError, match="spread_variability_sigma"):
        type(model.spec).model_validate(
            {**model.spec.model_dump(), "spread_variability_power": 0.5}
        )


def test_noise_in_the_hidden_values_is_taken_off_the_fitted_spread() -> None:
    # the hidden values carry noise of variance 0.04 on top of a field error of
    # variance 0.09: fitted with the noise given, the spread is the field's (0.09)
    g = torch.Generator().manual_seed(2)
    case = _synthetic(False)
    err = case["err"] + 0.2 * torch.randn(40_000, generator=g, dtype=torch.float64)  # type: ignore[operator]
    noisy = fit_variability(**{**case, "err": err})  # type: ignore[arg-type]
    clean = fit_variability(**{**case, "err": err}, noise=0.04)  # type: ignore[arg-type]
    assert noisy.scales[0] == pytest.approx(math.sqrt(0.13 / 0.01 * 8 / 9), rel=0.03)
    assert clean.scales[0] == pytest.approx(math.sqrt(0.09 / 0.01 * 8 / 9), rel=0.03)


def test_noise_larger_than_the_error_gives_the_smallest_factor_not_a_crash() -> None:
    from sparsediff.method.calibration import SCALE_MIN, solve_spread_scale

    assert solve_spread_scale(-0.5, 0.0, 0.0, 0.01, 8) == SCALE_MIN
    assert math.isfinite(solve_spread_scale(-0.5, 0.001, 0.0, 0.01, 8))


def test_thin_bins_are_pooled_outwards_and_fitted_not_extrapolated() -> None:
    from sparsediff.method.calibration import MIN_POINTS, bin_scales, thin_pools

    # per bin: n points with error variance e (mean perturbation 0, member variance 0.01)
    plan = [(0, 0.0), (300, 0.01), (50, 0.04), (60, 0.04), (100, 0.04), (5, 0.04)]
    sums = [[e * n, 0.0, 0.0, 0.01 * n, float(n)] for n, e in plan]
    # the empty bin near the data is left out; the short last pool joins the one below
    assert thin_pools(sums) == [[1], [2, 3, 4, 5]]
    assert sum(plan[j][0] for j in (2, 3, 4, 5)) >= MIN_POINTS
    pooled = bin_scales(sums, 8, 1.0, thin="pool")
    extrapolated = bin_scales(sums, 8, 1.0)
    near, far = math.sqrt(0.01 / 0.01 * 8 / 9), math.sqrt(0.04 / 0.01 * 8 / 9)
    assert pooled[1] == pytest.approx(near, rel=1e-9)
    assert pooled[2:] == pytest.approx([far] * 4, rel=1e-9)  # fitted on the far points
    assert extrapolated[2] == pytest.approx(near, rel=1e-9)  # 50 points: no factor of their own


def test_a_pool_merged_with_a_lower_bin_counts_its_points_once() -> None:
    from sparsediff.method.calibration import bin_scales

    # four thin bins (240 points, error variance 0.04), then 250 points at 0.02: the
    # factors would dip, so the two are fitted together, weighted by their points
    plan = [(60, 0.04)] * 4 + [(250, 0.02)]
    sums = [[e * n, 0.0, 0.0, 0.01 * n, float(n)] for n, e in plan]
    pooled = bin_scales(sums, 8, 1.0, thin="pool")
    both = (240 * 0.04 + 250 * 0.02) / 490
    assert pooled == pytest.approx([math.sqrt(both / 0.01 * 8 / 9)] * 5, rel=1e-9)
