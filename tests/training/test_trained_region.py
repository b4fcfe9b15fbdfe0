"""A model records the part of the data it trained on; evaluate warns when it scores there."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.data.sample_data import open_ostia
from sparsediff.errors import SparsediffWarning
from sparsediff.training.region import overlap_warning, trained_region
from tests.training.conftest import TINY

pytest.importorskip("iris_sample_data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    out = tmp_path_factory.mktemp("region")
    model = sparsediff.train(None, copy.deepcopy(TINY), out=out / "run")
    return model, out


def _data() -> Any:
    return open_ostia().isel(time=slice(0, 24), longitude=slice(0, 128)).load()


def test_the_model_records_its_training_and_validation_steps(trained: Any) -> None:
    model, out = trained
    rec = model.provenance["trained_region"]
    times = _data()["time"].values
    # 24 steps, the last 25 % (6) held out: steps 0-17 trained on (with validation)
    assert (rec["dim"], rec["start"], rec["stop"], rec["size"]) == ("time", 0, 18, 24)
    assert np.datetime64(rec["first"]) == times[0]
    assert np.datetime64(rec["last"]) == times[17]
    assert sparsediff.load(out / "run").provenance["trained_region"] == rec  # saved


def test_overlap_by_coordinates_and_for_older_models(trained: Any) -> None:
    model, _ = trained
    ds = _data()
    assert overlap_warning(model, ds, {"time": slice(18, 24)}) is None
    msg = overlap_warning(model, ds, {"time": slice(16, 20)})
    assert msg is not None
    assert msg.startswith("2 of the 4 scored time steps")
    # another file holding only the later months: matched by date, not by index
    assert overlap_warning(model, ds.isel(time=slice(12, 24)), {}) is not None
    assert overlap_warning(model, ds.isel(time=slice(18, 24)), {}) is None
    old = copy.copy(model)
    old.provenance = {k: v for k, v in model.provenance.items() if k != "trained_region"}
    assert trained_region(old) == {"dim": "time", "start": 0, "stop": 18, "size": 24}
    assert overlap_warning(old, ds, {"time": slice(17, 24)}) is not None
    assert overlap_warning(old, ds, {"time": slice(18, 24)}) is None


@pytest.mark.filterwarnings("always::sparsediff.errors.SparsediffWarning")
def test_evaluate_warns_once_in_python_and_on_the_command_line(
    trained: Any, tmp_path: Path
) -> None:
    model, out = trained
    ds = _data()
    kw: dict[str, Any] = {"baselines": None, "members": 1, "steps": 1, "holdout": "boxes:0.3"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sparsediff.evaluate(ds, model, region={"time": slice(16, 20)}, **kw)
        sparsediff.evaluate(ds, model, region={"time": slice(18, 24)}, **kw)
    ours = [w for w in caught if issubclass(w.category, SparsediffWarning)]
    trained_on = [w for w in ours if "used to train the model" in str(w.message)]
    assert len(trained_on) == 1
    ds.to_netcdf(tmp_path / "sst.nc")
    args = ["evaluate", str(out / "run"), str(tmp_path / "sst.nc"), "--baselines", "none",
            "--members", "1", "--steps", "1"]  # fmt: skip
    res = CliRunner().invoke(main, [*args, "--region", "time=10:20"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if "used to train the model" in ln]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("warning: "), res.stderr
    res = CliRunner().invoke(main, [*args, "--region", "time=18:24"])
    assert res.exit_code == 0, res.output
    assert "used to train the model" not in res.stderr


def test_training_curves_plot_the_logged_losses(trained: Any, tmp_path: Path) -> None:
    import pandas as pd

    from sparsediff.errors import InputError
    from sparsediff.plotting import plot_training

    _, out = trained
    logged = pd.read_csv(out / "run" / "metrics.csv")
    fig = plot_training(out / "run", path=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 5_000
    panels = [ax for ax in fig.axes if ax.get_ylabel() == "loss"]
    assert [ax.get_title() for ax in panels] == list(dict.fromkeys(logged["stage"]))
    for ax in panels:
        rows = logged[logged["stage"] == ax.get_title()]
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), rows["loss"])
    with pytest.raises(InputError, match=r"no metrics\.csv"):
        plot_training(tmp_path)
