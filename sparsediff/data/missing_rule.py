"""Which values of a variable are missing: one rule for training, fill and the statistics.

A value is missing ([`MissingRule`][MissingRule]) when it is

1. NaN or ±inf;
2. of magnitude ``>= 1e20`` (`FILL_MAGNITUDE`) in a floating-point
   variable: no physical field in sparsediff's scope reaches it, and it is
   what fill values look like in practice (netCDF's default 9.97e36, the
   1e20 of CMIP and NCL, 1e30 of older models) when a file does not declare
   them. Rescale a variable whose real values reach 1e20;
3. equal to the ``_FillValue`` or ``missing_value`` attribute (data opened
   without CF decoding; decoded data already hold NaN there);
4. outside ``valid_min``/``valid_max``/``valid_range`` (CF), when the
   variable declares them. For decoded packed data the bounds are unpacked
   with the ``scale_factor``/``add_offset`` of the encoding, as CF states
   them in packed units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["FILL_MAGNITUDE", "MissingRule", "finite_mask"]


#: Values of at least this magnitude are fill values, not observations (rule 2 above).
FILL_MAGNITUDE = 1e20


def _bound(value: Any) -> float | None:
    """The first element of an attribute as a float (``None`` if it has none)."""
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class MissingRule:
    """Which values of one variable are missing (see the module docstring).

    Attributes
    ----------
    fills
        Values that mark a missing point (``_FillValue``, ``missing_value``).
    valid_min, valid_max
        CF valid bounds, in the units of the values as read (``None``: none).
    magnitude
        Whether values of magnitude ``>= FILL_MAGNITUDE`` are missing (floats).
    """

    fills: tuple[float, ...] = ()
    valid_min: float | None = None
    valid_max: float | None = None
    magnitude: bool = True

    @classmethod
    def of(cls, da: xr.DataArray) -> MissingRule:
        """The rule of a variable, from its dtype, attributes and encoding."""
        attrs, enc = da.attrs, da.encoding
        fills = tuple(
            float(f)
            for key in ("_FillValue", "missing_value")
            if attrs.get(key) is not None
            for f in np.atleast_1d(attrs[key])
            if np.issubdtype(np.asarray(f).dtype, np.number)
        )
        lo, hi = _bound(attrs.get("valid_min")), _bound(attrs.get("valid_max"))
        if "valid_range" in attrs:
            rng = np.atleast_1d(attrs["valid_range"])
            if rng.size == 2:
                lo, hi = _bound(rng[0]), _bound(rng[1])
        packed = "scale_factor" in enc or "add_offset" in enc
        if packed and "scale_factor" not in attrs and "add_offset" not in attrs:
            # decoded packed data: CF gives the valid bounds in packed units
            scale, offset = float(enc.get("scale_factor", 1.0)), float(enc.get("add_offset", 0.0))
            bounds = sorted(b * scale + offset for b in (lo, hi) if b is not None)
            if lo is not None and hi is not None:
                lo, hi = bounds
            elif lo is not None:
                lo = lo * scale + offset
            elif hi is not None:
                hi = hi * scale + offset
        return cls(fills, lo, hi, da.dtype.kind in "fc")

    def usable(self, x: np.ndarray) -> np.ndarray:
        """``True`` where ``x`` holds a usable (not missing) value."""
        x = np.asarray(x)
        if x.dtype.kind in "fc":
            with np.errstate(invalid="ignore", over="ignore"):  # float16: 1e20 is inf
                ok = np.isfinite(x)
                if self.magnitude:
                    ok &= np.abs(x) < FILL_MAGNITUDE
        else:
            ok = np.ones(x.shape, dtype=bool)
        if self.fills:
            ok &= ~np.isin(x, np.asarray(self.fills, dtype=np.float64))
        with np.errstate(invalid="ignore", over="ignore"):
            if self.valid_min is not None:
                ok &= x >= self.valid_min
            if self.valid_max is not None:
                ok &= x <= self.valid_max
        return ok


def finite_mask(da: xr.DataArray) -> xr.DataArray:
    """``True`` where ``da`` holds a usable value (see [`MissingRule`][MissingRule]).

    Parameters
    ----------
    da
        A numeric variable. CF-decoded data carry NaN at fill values; for
        undecoded data the ``_FillValue``/``missing_value`` attributes count
        too; magnitudes ``>= 1e20`` and values outside the CF valid range are
        missing.

    Returns
    -------
    xarray.DataArray
        Boolean, same dims as ``da`` (lazy if ``da`` is).
    """
    rule = MissingRule.of(da)
    return xr.apply_ufunc(rule.usable, da, dask="parallelized", output_dtypes=[bool])
