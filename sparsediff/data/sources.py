"""Named data sources: what ``data.source`` of a training config may say.

``"ostia"`` and ``"mni152"`` are the built-in samples
([`sparsediff.data.sample_data`][sparsediff.data.sample_data]); ``"iris:RELATIVE/PATH"`` (glob
patterns
allowed) names files of the ``iris-sample-data`` package; anything else is a
path, glob or list of paths for [`sparsediff.open`][sparsediff.data.io.open].
"""

from __future__ import annotations

import xarray as xr

from sparsediff.data import io, sample_data
from sparsediff.errors import ConfigError

__all__ = ["resolve_source"]


def resolve_source(source: str | list[str] | None) -> xr.Dataset:
    """Open a data source named as in a training config.

    Parameters
    ----------
    source
        ``"ostia"``, ``"mni152"``, ``"iris:RELATIVE/PATH"``, or path(s).

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ConfigError
        No source, or an ``iris:`` pattern that matches no file.
    InputError
        A path that cannot be opened.
    """
    if source is None:
        raise ConfigError("data.source is not set and no Dataset was passed to train()")
    if source == "ostia":
        return sample_data.open_ostia()
    if source == "mni152":
        return sample_data.mni152()
    if isinstance(source, str) and source.startswith("iris:"):
        root = sample_data.ostia_path().parent
        paths = sorted(root.glob(source[len("iris:") :]))
        if not paths:
            raise ConfigError(f"data.source {source!r} matches no file of iris-sample-data")
        return io.open(paths if len(paths) > 1 else paths[0])
    return io.open(source)
