"""Units compared as units, not as strings: ``"kelvin"`` and ``"K"`` are one unit.

A model records the units of its training data; a fill refuses data in other
units. Comparing the strings refused ``"kelvin"`` against ``"K"`` (and
``"m s-1"`` against ``"m/s"``). [`same_units`][same_units] parses both with
`cf_units <https://cf-units.readthedocs.io>`_ (UDUNITS-2, the library CF
names for its ``units`` attribute) and compares the units themselves.
Units that are only convertible (``"degC"`` and ``"K"``, ``"hPa"`` and
``"Pa"``) are not the same: the values would differ. A string UDUNITS cannot
parse is compared as text.
"""

from __future__ import annotations

__all__ = ["same_units"]


def same_units(a: str, b: str) -> bool:
    """Whether the unit strings ``a`` and ``b`` name the same unit (CF/UDUNITS-2).

    Parameters
    ----------
    a, b
        ``units`` attributes, e.g. ``"K"`` and ``"kelvin"``.

    Returns
    -------
    bool
        ``True`` for equal strings, or strings that UDUNITS-2 parses to the
        same unit (same dimension, scale and offset).
    """
    if a.strip() == b.strip():
        return True
    import cf_units  # loaded only when the strings differ (its import takes a while)

    try:
        return bool(cf_units.Unit(a) == cf_units.Unit(b))
    except ValueError:  # a string UDUNITS does not know: compared as text (above)
        return False
