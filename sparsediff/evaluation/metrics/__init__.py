"""Scores of a gap fill against held-out truth (xarray in, xarray out).

Every metric takes the prediction (or an ensemble with a ``member`` dim), the
truth and a boolean ``mask`` whose ``True`` points are the points to score —
in an evaluation, the observed points that were hidden before the fill (the
held-out points). Points outside the mask are ignored whatever they hold (NaN
included); a NaN *inside* the mask makes the score NaN, so a fill that leaves
holes cannot look good.

Conventions
-----------
* ``dims``: the dims to reduce over (default: all of them); the others stay.
* Area weighting: when the data have a latitude coordinate (a coord named
  ``lat``/``latitude``, or with ``units = "degrees_north"`` or
  ``standard_name = "latitude"``), the means are weighted by ``cos(latitude)``
  (`area_weights`); ``area_weighted=False`` turns it off. Curvilinear
  (2-D) latitude coordinates work the same way.
* CRPS comes from `scoringrules` (`scoringrules.crps_ensemble`).
* PSNR and SSIM are image metrics for 2-D/3-D volumes, unweighted, restricted
  to the mask (the BraTS inpainting convention: only the filled region counts).

The inputs may be dask-backed; `rmse`, `mae`, `bias`,
`crps` and `spread_skill_ratio` stay lazy, the others compute.
"""

from __future__ import annotations

from sparsediff.evaluation.metrics.ensemble import crps, rank_histogram, spread_skill_ratio
from sparsediff.evaluation.metrics.image import psnr, ssim
from sparsediff.evaluation.metrics.multivariate import (
    energy_score,
    gap_regions,
    multivariate_scores,
    variogram_score,
)
from sparsediff.evaluation.metrics.pointwise import bias, mae, rmse
from sparsediff.evaluation.metrics.spectral import (
    band_ratios,
    gap_spectrum_ratio,
    plot_gap_spectra,
    power_spectrum,
    power_spectrum_ratio,
    spectrum_ratio_score,
)
from sparsediff.evaluation.metrics.table import GAP_BANDS, score_table, structure_table
from sparsediff.evaluation.metrics.weighting import area_weights

__all__ = [
    "GAP_BANDS",
    "area_weights",
    "band_ratios",
    "bias",
    "crps",
    "energy_score",
    "gap_regions",
    "gap_spectrum_ratio",
    "mae",
    "multivariate_scores",
    "plot_gap_spectra",
    "power_spectrum",
    "power_spectrum_ratio",
    "psnr",
    "rank_histogram",
    "rmse",
    "score_table",
    "spectrum_ratio_score",
    "spread_skill_ratio",
    "ssim",
    "structure_table",
    "variogram_score",
]
