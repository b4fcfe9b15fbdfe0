"""One table of the pointwise and ensemble scores per method."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation.metrics.ensemble import _check_members, crps, spread_skill_ratio
from sparsediff.evaluation.metrics.multivariate import multivariate_scores
from sparsediff.evaluation.metrics.pointwise import bias, mae, rmse
from sparsediff.evaluation.metrics.spectral import band_ratios, gap_spectrum_ratio

__all__ = ["GAP_BANDS", "score_table", "structure_table"]


def score_table(
    preds: Mapping[str, xr.DataArray],
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    ensembles: Mapping[str, xr.DataArray] | None = None,
    member_dim: Hashable = "member",
    area_weighted: bool = True,
) -> pd.DataFrame:
    """One row of scores per method.

    Parameters
    ----------
    preds
        Method name -> deterministic prediction.
    truth, mask, area_weighted
        As for `rmse`.
    ensembles
        Method name -> ensemble (with ``member_dim``). A method only in
        ``ensembles`` is scored deterministically on its ensemble mean.
    member_dim
        Name of the member dim of the ensembles.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``rmse``, ``mae``, ``bias`` and, when ensembles
        are given, ``crps`` (standard estimator) and ``spread_skill`` (NaN
        for methods without an ensemble, and ``spread_skill`` also for
        one-member ensembles); one row per method, in the order of ``preds``
        then the ensemble-only methods.

    Raises
    ------
    InputError
        No method given, or as for the metrics.
    """
    ensembles = dict(ensembles or {})
    names = list(preds) + [n for n in ensembles if n not in preds]
    if not names:
        raise InputError("score_table needs at least one prediction or ensemble")
    rows = []
    for name in names:
        if name in preds:
            pred = preds[name]
        else:
            pred = _check_members(ensembles[name], member_dim, 1).mean([member_dim], skipna=False)
        row: dict[str, object] = {
            "method": name,
            "rmse": float(rmse(pred, truth, mask, area_weighted=area_weighted)),
            "mae": float(mae(pred, truth, mask, area_weighted=area_weighted)),
            "bias": float(bias(pred, truth, mask, area_weighted=area_weighted)),
        }
        if ensembles:
            ens = ensembles.get(name)
            row["crps"] = (
                float(crps(ens, truth, mask, member_dim=member_dim, area_weighted=area_weighted))
                if ens is not None
                else np.nan
            )
            row["spread_skill"] = (
                float(
                    spread_skill_ratio(
                        ens, truth, mask, member_dim=member_dim, area_weighted=area_weighted
                    )
                )
                if ens is not None and ens.sizes.get(member_dim, 0) >= 2
                else np.nan
            )
        rows.append(row)
    return pd.DataFrame(rows)


GAP_BANDS: tuple[str, ...] = ("gap_power_low", "gap_power_mid", "gap_power_high")
"""Columns of [`structure_table`][structure_table]: the members' power in the gaps over
the truth's, in three equal-width wavenumber bands (low to high)."""


def structure_table(
    ensembles: Mapping[str, xr.DataArray],
    truth: xr.DataArray,
    mask: xr.DataArray,
    *,
    dims: Sequence[Hashable],
    spectrum_dims: Sequence[Hashable],
    member_dim: Hashable = "member",
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, xr.DataArray]]:
    """Whether the members of each ensemble vary together like the truth: one row per method.

    Parameters
    ----------
    ensembles
        Method name -> ensemble (a deterministic fill is a one-member ensemble).
    truth, mask
        As for [`score_table`][score_table] (``mask``: the held-out points).
    dims
        The spatial dims gap regions are connected over.
    spectrum_dims
        The two spatial dims of the spectra.
    member_dim
        Name of the member dim.
    seed
        Seed of the point subsets of large regions (the same for every method).

    Returns
    -------
    table, ratios
        Columns ``method``, ``energy_score`` and ``variogram_score``
        ([`multivariate_scores`][sparsediff.evaluation.metrics.multivariate_scores]: means over
        the gap regions), ``n_regions`` and the [`GAP_BANDS`][GAP_BANDS]
        ([`band_ratios`][sparsediff.evaluation.metrics.band_ratios] of
        [`gap_spectrum_ratio`][sparsediff.evaluation.metrics.gap_spectrum_ratio]); and the
        gap spectrum ratio of each method, for
        [`plot_gap_spectra`][sparsediff.evaluation.metrics.plot_gap_spectra].
    """
    rows = []
    ratios: dict[str, xr.DataArray] = {}
    for name, ens in ensembles.items():
        row: dict[str, object] = {"method": name}
        row.update(
            multivariate_scores(ens, truth, mask, dims=dims, member_dim=member_dim, seed=seed)
        )
        ratios[name] = gap_spectrum_ratio(
            ens, truth, mask, dims=spectrum_dims, member_dim=member_dim
        )
        row.update(zip(GAP_BANDS, band_ratios(ratios[name], bands=len(GAP_BANDS)), strict=True))
        rows.append(row)
    return pd.DataFrame(rows), ratios
