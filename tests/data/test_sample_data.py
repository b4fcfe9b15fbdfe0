"""open_ostia: no attribute names a variable it dropped (issue 19)."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

import sparsediff
from sparsediff.data.sample_data import open_ostia

LINKS = ("bounds", "coordinates", "ancillary_variables", "grid_mapping", "cell_measures")


def test_open_ostia_names_no_variable_it_dropped(ostia_path: Path, tmp_path: Path) -> None:
    raw = xr.open_dataset(ostia_path)
    assert any("bounds" in v.attrs for v in raw.variables.values())  # the file has bounds
    for ds in (open_ostia(), open_ostia(chunks={"time": 6})):
        for name, var in ds.variables.items():
            for key in LINKS:
                for meta in (var.attrs, var.encoding):
                    for target in str(meta.get(key, "")).split():
                        target = target.rstrip(":")
                        assert target in ds.variables or key == "cell_measures", (name, key, target)
    sparsediff.write(open_ostia(), tmp_path / "o.nc")
    back = xr.open_dataset(tmp_path / "o.nc")
    assert "bounds" not in back["time"].attrs
    assert "bounds" not in back["forecast_reference_time"].attrs
