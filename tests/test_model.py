"""The model container: save → load is exact; bad directories give clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import sparsediff
from sparsediff.errors import CheckpointError
from sparsediff.model import FORMAT_VERSION
from tests.filling.conftest import make_model


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return make_model(["a", "b"], ["y", "x"], [8, 8], seed=1).save(tmp_path / "m")


def _outputs(model: sparsediff.Model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 8, 8, generator=g)
    m = torch.rand(2, 2, 8, 8, generator=g) > 0.3
    ae, prior = model.autoencoder, model.prior
    assert ae is not None
    assert prior is not None
    inputs = torch.randn(2, model.method.n_inputs, 8, 8, generator=g)
    mean, _ = ae.encode(x, m, inputs)  # type: ignore[operator]
    dec = ae.decode(inputs, mean)  # type: ignore[operator]
    cond = model.method.cond(inputs)  # type: ignore[attr-defined]
    d = prior(torch.randn(2, 2, 4, 4, generator=g), torch.tensor([0.5, 3.0]), cond)
    return mean, dec, d


def test_save_load_bit_identical(saved: Path) -> None:
    original = make_model(["a", "b"], ["y", "x"], [8, 8], seed=1)
    loaded = sparsediff.load(saved)
    with torch.no_grad():
        for a, b in zip(_outputs(original), _outputs(loaded), strict=True):
            assert torch.equal(a, b)
    assert loaded.variables == ["a", "b"]
    assert loaded.dims == ("y", "x")
    assert loaded.stats["a"].std == 1.0
    files = sorted(p.name for p in saved.iterdir())
    assert files == [
        "autoencoder.safetensors",
        "config.json",
        "prior.safetensors",
        "provenance.json",
        "stats.json",
    ]


def test_save_refuses_existing_and_is_atomic(saved: Path) -> None:
    model = sparsediff.load(saved)
    with pytest.raises(CheckpointError, match="already exists"):
        model.save(saved)
    model.save(saved, overwrite=True)
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]


def test_incompatible_version(saved: Path) -> None:
    cfg = json.loads((saved / "config.json").read_text())
    cfg["format_version"] = FORMAT_VERSION + 1
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError,
        match=rf"version {FORMAT_VERSION + 1}; this sparsediff reads version {FORMAT_VERSION}",
    ):
        sparsediff.load(saved)


def test_truncated_weights(saved: Path) -> None:
    f = saved / "prior.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"prior.safetensors does not match the checksum"):
        sparsediff.load(saved)


def test_tampered_weights(saved: Path) -> None:
    f = saved / "autoencoder.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF  # flip bits of one weight: same size, same header
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"autoencoder.safetensors does not match"):
        sparsediff.load(saved)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        sparsediff.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        sparsediff.load(tmp_path)


def test_no_pickle_anywhere() -> None:
    src = Path(sparsediff.__file__).parent
    for py in src.rglob("*.py"):
        text = py.read_text()
        assert "import pickle" not in text, py
        assert "torch.load(" not in text or "weights_only=True" in text, py


def _with_climatology(tmp_path: Path) -> Path:
    import numpy as np
    import xarray as xr

    model = make_model(["a", "b"], ["y", "x"], [8, 8], seed=1)
    grid = {"y": np.arange(8.0), "x": np.arange(10.0)}
    model.climatology = {
        v: xr.DataArray(np.full((8, 10), 280.0 + i), dims=("y", "x"), coords=grid, name=v)
        for i, v in enumerate(model.variables)
    }
    return model.save(tmp_path / "clim")


@pytest.mark.parametrize(
    "fname", ["stats.json", "provenance.json", "climatology.safetensors", "prior.safetensors"]
)
def test_every_file_is_checksummed(tmp_path: Path, fname: str) -> None:
    saved = _with_climatology(tmp_path)
    assert sparsediff.load(saved).climatology is not None
    cfg = json.loads((saved / "config.json").read_text())
    assert sorted(cfg["files"]) == sorted(
        p.name for p in saved.iterdir() if p.name != "config.json"
    )
    f = saved / fname
    if fname.endswith(".json"):  # still valid, plausible JSON: a shifted mean, a new note
        doc = json.loads(f.read_text())
        if fname == "stats.json":
            doc["variables"]["a"]["mean"] += 40.0
        else:
            doc["note"] = "edited"
        f.write_text(json.dumps(doc))
    else:  # flip bits of the last value: same size, same header
        data = bytearray(f.read_bytes())
        data[-1] ^= 0xFF
        f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{fname} does not match the checksum"):
        sparsediff.load(saved)


def test_config_that_is_not_an_object(saved: Path) -> None:
    (saved / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a JSON list, not a sparsediff model"):
        sparsediff.load(saved)


def test_files_outside_the_model_directory_are_refused(saved: Path) -> None:
    cfg = json.loads((saved / "config.json").read_text())
    cfg["files"]["../stats.json"] = cfg["files"]["stats.json"]
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"lists '\.\./stats\.json', not a file of the model"):
        sparsediff.load(saved)


def test_load_accepts_a_run_directory_and_hints_at_nested_models(tmp_path: Path) -> None:
    model = make_model(["a", "b"], ["y", "x"], [8, 8], seed=1)
    model.save(tmp_path / "runs" / "demo" / "model")
    loaded = sparsediff.load(tmp_path / "runs" / "demo")  # what `train --out` printed
    assert loaded.variables == ["a", "b"]
    with pytest.raises(CheckpointError, match=r"did you mean '.*runs/demo/model'\?"):
        sparsediff.load(tmp_path / "runs")
    (tmp_path / "other").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json\)$"):
        sparsediff.load(tmp_path / "other")


def test_model_without_stats_checksum_is_refused(saved: Path) -> None:
    # format 2 always checksums every file: a record without one was edited by hand
    cfg = json.loads((saved / "config.json").read_text())
    del cfg["files"]["stats.json"]
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"no checksum of stats\.json"):
        sparsediff.load(saved)


def test_shipped_demo_model_checksums_every_file() -> None:
    from sparsediff.demo import DEMO_MODEL

    cfg = json.loads((DEMO_MODEL / "config.json").read_text())
    on_disk = sorted(p.name for p in DEMO_MODEL.iterdir() if p.name != "config.json")
    assert sorted(cfg["files"]) == on_disk


def test_fields_keep_their_coordinates_of_any_kind(tmp_path: Path) -> None:
    """Climatology and invalid mask keep numeric, time and label coordinates (a fill matches
    the data to them by coordinates)."""
    import numpy as np
    import xarray as xr

    model = make_model(["a", "b"], ["y", "x"], [8, 8], seed=1)
    coords = {
        "y": np.array(["2000-01-01", "2000-02-01"], dtype="datetime64[ns]"),
        "x": np.array(["north", "east", "south"]),
    }
    model.climatology = {
        v: xr.DataArray(np.full((2, 3), 1.5 + i), dims=("y", "x"), coords=coords, name=v)
        for i, v in enumerate(model.variables)
    }
    lat = {"lat": np.arange(-2.0, 3.0), "lon": np.arange(0.0, 360.0, 60.0)}
    mask = xr.DataArray(np.eye(5, 6, dtype=bool), dims=("lat", "lon"), coords=lat)
    model.invalid = {v: mask.rename(v) for v in model.variables}
    back = sparsediff.load(model.save(tmp_path / "m"))
    assert back.climatology is not None
    assert back.invalid is not None
    for v in model.variables:
        xr.testing.assert_identical(back.climatology[v], model.climatology[v])
        xr.testing.assert_identical(back.invalid[v], model.invalid[v])


def _with_invalid(tmp_path: Path) -> Path:
    import numpy as np
    import xarray as xr

    model = make_model(["a", "b"], ["y", "x"], [8, 8], seed=1)
    mask = xr.DataArray(np.zeros((8, 10), bool), dims=("y", "x"), coords={"x": np.arange(10.0)})
    model.invalid = {v: mask.rename(v) for v in model.variables}
    return model.save(tmp_path / "inv")


def test_invalid_mask_is_checksummed(tmp_path: Path) -> None:
    saved = _with_invalid(tmp_path)
    f = saved / "invalid.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01  # one point of the mask flipped: same size, same header
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"invalid\.safetensors does not match the checksum"):
        sparsediff.load(saved)


@pytest.mark.parametrize("fname", ["climatology.safetensors", "invalid.safetensors"])
def test_a_model_file_without_checksum_is_refused_not_ignored(tmp_path: Path, fname: str) -> None:
    """Dropping a field file's entry from config.json must not load the model without it."""
    saved = _with_climatology(tmp_path) if fname.startswith("clim") else _with_invalid(tmp_path)
    cfg = json.loads((saved / "config.json").read_text())
    del cfg["files"][fname]
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=rf"no checksum of {fname}"):
        sparsediff.load(saved)


@pytest.mark.parametrize(
    ("net", "path", "value", "match"),
    [
        ("prior", ["backbone", "widths"], [65536, 65536], r"backbone\.widths = 65536 is outside"),
        ("autoencoder", ["encoder_widths"], [8, 4097], r"encoder_widths = 4097 is outside"),
        ("autoencoder", ["latent_channels"], 100000, r"latent_channels = 100000 is outside"),
        ("autoencoder", ["decoder_widths"], [8] * 20, r"list of 1 to 8 widths"),
        ("autoencoder", ["decoder_widths"], "wide", r"list of 1 to 8 widths"),
        ("prior", ["backbone", "blocks_per_level"], 1000, r"blocks_per_level = 1000"),
        ("autoencoder", ["n_inputs"], -3, r"n_inputs = -3 is outside"),
        ("prior", ["backbone", "widths"], [4096] * 8, r"about .* parameters, more than 1e\+09"),
        ("autoencoder", ["encoder_widths"], [8, True], r"must be an integer, got True"),
    ],
    ids=[
        "width-65536",
        "width-4097",
        "latent-channels",
        "too-deep",
        "not-a-list",
        "blocks",
        "negative",
        "too-many-parameters",
        "bool-width",
    ],
)
def test_absurd_network_configs_are_refused_before_building(
    saved: Path, net: str, path: list[str], value: object, match: str
) -> None:
    import time

    cfg = json.loads((saved / "config.json").read_text())
    node = cfg[net]["config"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (saved / "config.json").write_text(json.dumps(cfg))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match) as err:
        sparsediff.load(saved)
    assert "\n" not in str(err.value)
    assert time.perf_counter() - start < 5.0  # refused, not allocated


def test_a_config_the_network_cannot_take_is_one_clear_error(saved: Path) -> None:
    cfg = json.loads((saved / "config.json").read_text())
    cfg["autoencoder"]["config"]["no_such_option"] = 1
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="'autoencoder' cannot be built from its config"):
        sparsediff.load(saved)


def test_spec_is_saved_with_mode_and_old_kind_key_still_loads(saved: Path) -> None:
    # the concept is one word, `mode` (the training config's word); a config.json
    # written before the rename says "kind" and must keep loading
    doc = json.loads((saved / "config.json").read_text())
    assert doc["model"]["mode"] == "latent"
    assert "kind" not in doc["model"]
    new = sparsediff.load(saved)
    doc["model"] = {("kind" if k == "mode" else k): v for k, v in doc["model"].items()}
    (saved / "config.json").write_text(json.dumps(doc))
    old = sparsediff.load(saved)
    assert old.spec == new.spec
    assert old.spec.mode == "latent"
    with pytest.warns(DeprecationWarning, match="ModelSpec.kind is now ModelSpec.mode"):
        assert old.spec.kind == "latent"  # code written before the rename keeps working
    doc["model"]["mode"] = "latent"  # both spellings at once: ambiguous, refused
    (saved / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="both 'mode' and 'kind'"):
        sparsediff.load(saved)


def test_shipped_demo_model_loads_with_its_spread_steps() -> None:
    from sparsediff.demo import DEMO_MODEL

    raw = json.loads((Path(DEMO_MODEL) / "config.json").read_text())
    assert raw["model"]["mode"] == "latent"  # (the old "kind" key: the test above)
    model = sparsediff.load(DEMO_MODEL)
    assert model.spec.mode == "latent"
    assert set(model.nets) == {"autoencoder", "prior"}
    # calibrated at calibration.steps (or recalibrated at them: pipelines/recalibrate.py),
    # which a fill takes by default
    done = model.provenance.get("recalibration") or model.provenance["config"]
    assert model.spec.spread_steps == done["calibration"]["steps"] == 6


def test_an_unknown_mode_is_refused_on_load(saved: Path) -> None:
    doc = json.loads((saved / "config.json").read_text())
    doc["model"]["mode"] = "spectral"
    (saved / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="unknown mode 'spectral'; known: latent, pixel"):
        sparsediff.load(saved)


def test_load_builds_only_the_network_classes_of_the_models_method(saved: Path) -> None:
    cfg = saved / "config.json"
    doc = json.loads(cfg.read_text())
    # a class that exists but is not the latent method's prior
    doc["prior"]["class"] = "CompletionAutoencoder"
    cfg.write_text(json.dumps(doc))
    with pytest.raises(
        CheckpointError,
        match=r"'prior' has unknown class 'CompletionAutoencoder'.*model is EDMPrecond",
    ):
        sparsediff.load(saved)


def test_a_pixel_model_with_an_autoencoder_entry_is_refused(tmp_path: Path) -> None:
    latent = make_model(["a"], ["y", "x"], [8, 8]).save(tmp_path / "latent")
    pixel = make_model(["a"], ["y", "x"], [8, 8], mode="pixel").save(tmp_path / "pixel")
    doc = json.loads((pixel / "config.json").read_text())
    assert doc["autoencoder"] is None  # the format's slot, empty for a pixel model
    assert sparsediff.load(pixel).nets.keys() == {"prior"}
    # graft the latent model's autoencoder (file and checksum) onto the pixel model
    ldoc = json.loads((latent / "config.json").read_text())
    doc["autoencoder"] = ldoc["autoencoder"]
    doc["files"]["autoencoder.safetensors"] = ldoc["files"]["autoencoder.safetensors"]
    (pixel / "autoencoder.safetensors").write_bytes(
        (latent / "autoencoder.safetensors").read_bytes()
    )
    (pixel / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="a pixel model has no 'autoencoder' network"):
        sparsediff.load(pixel)


def test_every_model_file_gets_the_umask_permissions(saved: Path) -> None:
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    for f in saved.iterdir():
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode == 0o666 & ~umask, (f.name, oct(mode))  # not safetensors' owner-only 0600
