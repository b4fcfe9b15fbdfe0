"""Checkpoints: names stay inside the run directory; a changed network is one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from sparsediff.cli import main
from sparsediff.errors import CheckpointError
from sparsediff.training.checkpoint import (
    TrainState,
    check_state_fits,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sparsediff.training.trainer import train
from tests.training.conftest import write_config


def _run_with_checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    net = torch.nn.Linear(3, 2)
    save_checkpoint(out, TrainState("autoencoder", 3), {"net": net.state_dict()})
    return out


def test_latest_checkpoint_round_trip(tmp_path: Path) -> None:
    out = _run_with_checkpoint(tmp_path)
    path = latest_checkpoint(out)
    assert path == out / "checkpoints" / "autoencoder-00000003"
    state, tensors, opt = load_checkpoint(path)
    assert (state.stage, state.step, opt) == ("autoencoder", 3, None)
    assert sorted(tensors["net"]) == ["bias", "weight"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "autoencoder-00000003",
        "latest.json",
    ]


@pytest.mark.parametrize(
    "name",
    ["../../elsewhere", "/tmp/elsewhere", "..", "sub/autoencoder-00000003", ".hidden", 7],
)
def test_latest_pointing_outside_the_run_is_refused(tmp_path: Path, name: Any) -> None:
    out = _run_with_checkpoint(tmp_path)
    # a complete-looking checkpoint outside the run directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "state.json").write_text("{}")
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": name}))
    with pytest.raises(CheckpointError, match="not a checkpoint directory inside"):
        latest_checkpoint(out)


def test_symlink_leading_out_of_the_run_is_refused(tmp_path: Path) -> None:
    out = _run_with_checkpoint(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "state.json").write_text("{}")
    os.symlink(elsewhere, out / "checkpoints" / "prior-00000009")
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": "prior-00000009"}))
    with pytest.raises(CheckpointError, match="not a checkpoint directory inside"):
        latest_checkpoint(out)
    (out / "checkpoints" / "latest.json").write_text("[1]")
    with pytest.raises(CheckpointError, match="is not a checkpoint pointer"):
        latest_checkpoint(out)


def _run_with_optimizer(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    return save_checkpoint(out, TrainState("prior", 5), {"net": net.state_dict()}, opt)


def test_every_file_of_a_checkpoint_is_checksummed(tmp_path: Path) -> None:
    path = _run_with_optimizer(tmp_path)
    doc = json.loads((path / "state.json").read_text())
    assert sorted(doc["files"]) == ["net.safetensors", "optim.safetensors"]
    state, tensors, opt = load_checkpoint(path)
    assert sorted(tensors) == ["net"]
    assert (state.stage, state.step) == ("prior", 5)
    assert opt is not None
    assert sorted(opt["state"][0]) == ["exp_avg", "exp_avg_sq", "step"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_corrupted_checkpoint_is_refused_with_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = _run_with_optimizer(tmp_path)
    target = path / "optim.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[-1] ^= 0xFF  # a tensor byte: still a readable safetensors file
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[: len(data) // 2]))
    else:
        target.unlink()
    expected = "is missing" if damage == "delete" else "does not match the checksum in state.json"
    with pytest.raises(CheckpointError, match=rf"optim\.safetensors {expected}"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=rf"optim\.safetensors {expected}"):
        load_checkpoint(latest_checkpoint(path.parent.parent))  # type: ignore[arg-type]


def test_a_tensor_file_the_checksums_do_not_cover_is_refused(tmp_path: Path) -> None:
    path = _run_with_optimizer(tmp_path)
    doc = json.loads((path / "state.json").read_text())
    del doc["files"]["net.safetensors"]
    (path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"records no checksum of net\.safetensors"):
        load_checkpoint(path)


def test_a_checkpoint_written_before_checksums_still_loads(tmp_path: Path) -> None:
    path = _run_with_optimizer(tmp_path)
    before = load_checkpoint(path)
    doc = json.loads((path / "state.json").read_text())
    del doc["files"]  # the layout of checkpoints written before the checksums
    (path / "state.json").write_text(json.dumps(doc, indent=1))
    after = load_checkpoint(path)
    assert after[0] == before[0]
    for group, tensors in before[1].items():
        for k, v in tensors.items():
            assert torch.equal(after[1][group][k], v)
    assert after[2] is not None


def test_check_state_fits_names_what_differs() -> None:
    small = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    wide = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Linear(8, 2))
    deeper = torch.nn.Sequential(small[0], small[1], torch.nn.Linear(2, 2))
    check_state_fits(small, small.state_dict(), "weights")  # fits: no error
    with pytest.raises(CheckpointError) as err:
        check_state_fits(wide, small.state_dict(), "autoencoder weights")
    msg = str(err.value)
    assert "\n" not in msg
    assert "autoencoder weights" in msg
    assert "3 tensor(s) of another shape (first '0.weight': 4x3 in the checkpoint, 8x3 now)" in msg
    with pytest.raises(CheckpointError, match=r"2 key\(s\) missing \(first '2.weight'\)"):
        check_state_fits(deeper, small.state_dict(), "weights")
    with pytest.raises(CheckpointError, match=r"2 unexpected key\(s\) \(first '2.weight'\)"):
        check_state_fits(small, deeper.state_dict(), "weights")


def test_resume_with_changed_widths_is_one_line(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["autoencoder"]["steps"] = 3
    tiny_config["stages"] = ["autoencoder"]
    out = tmp_path / "r"
    train(None, tiny_config, out=out)
    tiny_config["autoencoder"]["encoder_widths"] = [8, 16, 32]
    config = write_config(tiny_config, tmp_path / "changed.yaml")
    res = CliRunner().invoke(main, ["train", str(config), "--out", str(out), "--resume"])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the checkpoint's autoencoder weights do not fit")
    assert "in the checkpoint" in lines[0]


def test_resume_from_a_corrupted_checkpoint_is_one_line(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["autoencoder"]["steps"] = 3
    tiny_config["stages"] = ["autoencoder"]
    out = tmp_path / "r"
    train(None, tiny_config, out=out)
    ckpt = latest_checkpoint(out)
    assert ckpt is not None
    weights = sorted(ckpt.glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    config = write_config(tiny_config, tmp_path / "same.yaml")
    res = CliRunner().invoke(main, ["train", str(config), "--out", str(out), "--resume"])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert f"{weights.name} does not match the checksum in state.json" in lines[0]
