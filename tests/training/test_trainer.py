"""Training runs on real OSTIA SST: determinism, resume after SIGKILL, NaN stop, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sparsediff
from sparsediff.errors import TrainingError
from sparsediff.training.checkpoint import latest_checkpoint, load_checkpoint
from sparsediff.training.trainer import train
from tests.training.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("autoencoder", "prior"):
        f = model_dir / f"{name}.safetensors"
        if f.exists():
            out.update({f"{name}.{k}": v for k, v in load_file(str(f)).items()})
    return out


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_train_writes_model_metrics_and_is_deterministic(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["run"]["eval_every"] = 6
    m1 = train(None, tiny_config, out=tmp_path / "a")
    m2 = train(None, tiny_config, out=tmp_path / "b")
    _assert_same(_weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model"))
    assert m1.autoencoder is not None
    assert m1.prior is not None
    assert m1.spec.window == [8, 32]
    assert m1.spec.units == {"surface_temperature": "K"}
    rows = [
        json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    ]
    stages = {r["stage"] for r in rows}
    assert stages == {"autoencoder", "prior"}
    assert all(r["samples_per_s"] > 0 for r in rows)
    assert any("val_rmse" in r and r["val_rmse"] > 0 for r in rows)
    assert (tmp_path / "a" / "metrics.csv").read_text().startswith("time,stage,step,loss")
    loaded = sparsediff.load(tmp_path / "a" / "model")
    assert loaded.provenance["config"]["run"]["seed"] == 3
    assert loaded.spec.latent_scale == pytest.approx(m2.spec.latent_scale)
    assert loaded.spec == m2.spec.model_copy(update={"latent_scale": loaded.spec.latent_scale})


def test_refuses_to_overwrite_a_run_without_resume(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["autoencoder"]["steps"] = 3
    tiny_config["stages"] = ["autoencoder"]
    train(None, tiny_config, out=tmp_path / "r")
    with pytest.raises(TrainingError, match="--resume"):
        train(None, tiny_config, out=tmp_path / "r")


def _kill_at_checkpoint(cmd: list[str], out: Path, prefix: str) -> str:
    """Start a training subprocess and SIGKILL it once a checkpoint named prefix* exists."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "--out", str(out)], env=env, cwd=ROOT)
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.time() + 240
    killed_at = None
    try:
        while time.time() < deadline and proc.poll() is None:
            if pointer.exists():
                name = json.loads(pointer.read_text())["checkpoint"]
                if name.startswith(prefix):
                    proc.send_signal(signal.SIGKILL)
                    killed_at = name
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (out / "model").exists()
    return killed_at


def test_sigkill_then_resume_matches_uninterrupted(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["autoencoder"]["steps"] = 12
    tiny_config["prior"]["steps"] = 12
    tiny_config["run"]["checkpoint_every"] = 4
    cfg = write_config(tiny_config, tmp_path / "cfg.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sparsediff", "train", str(cfg)]
    subprocess.run([*cmd, "--out", str(tmp_path / "full")], check=True, env=env, cwd=ROOT)
    out = tmp_path / "killed"
    # killed mid stage 2: the hardest place to resume (stage 1 finished, stage 2 half done)
    _kill_at_checkpoint(cmd, out, "prior-")
    subprocess.run([*cmd, "--out", str(out), "--resume"], check=True, env=env, cwd=ROOT)
    _assert_same(_weights(tmp_path / "full" / "model"), _weights(out / "model"))


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["stages"] = ["autoencoder"]
    tiny_config["autoencoder"]["steps"] = 400
    tiny_config["run"]["checkpoint_every"] = 2
    cfg = write_config(tiny_config, tmp_path / "cfg.yaml")
    out = tmp_path / "run"
    _kill_at_checkpoint(
        [sys.executable, "-m", "sparsediff", "train", str(cfg)], out, "autoencoder-"
    )
    good = latest_checkpoint(out)
    assert good is not None
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    # resume with an absurd learning rate: the loss blows up to inf/NaN
    tiny_config["optim"].update(lr=1e30, grad_clip=1e30)
    with pytest.raises(
        TrainingError, match=r"autoencoder (loss|weights) became .* Last good checkpoint"
    ):
        train(None, tiny_config, out=out, resume=True)
    # the last good checkpoint is intact (same bytes) and its weights finite
    latest = latest_checkpoint(out)
    assert latest is not None
    _, tensors, _ = load_checkpoint(latest)
    assert all(torch.isfinite(t).all() for t in tensors["net"].values())
    if latest == good:
        assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert not (out / "model").exists()


def test_gradient_accumulation_matches_the_larger_batch(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    """batch 2 x 2 accumulation steps == batch 4: same samples, same keyed noise.

    Adam turns float noise in near-zero gradients (biases just before a
    GroupNorm) into full-size steps, so a few weights may differ by ~lr; the
    losses and the bulk of the weights agree to float precision.
    """
    tiny_config["stages"] = ["autoencoder"]
    tiny_config["autoencoder"]["steps"] = 4
    tiny_config["optim"]["batch_size"] = 4
    tiny_config["run"]["log_every"] = 1

    def run(name: str, batch: int, accum: int) -> tuple[list[float], np.ndarray]:
        tiny_config["optim"].update(batch_size=batch, grad_accum=accum)
        model = train(None, tiny_config, out=tmp_path / name)
        assert model.autoencoder is not None
        rows = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        losses = [json.loads(r)["loss"] for r in rows]
        flat = torch.cat([v.flatten() for v in model.autoencoder.state_dict().values()])
        return losses, flat.numpy()

    big_loss, big_w = run("big", 4, 1)
    acc_loss, acc_w = run("acc", 2, 2)
    _, small_w = run("small", 2, 1)
    np.testing.assert_allclose(acc_loss, big_loss, rtol=1e-5)
    assert np.median(np.abs(acc_w - big_w)) < 1e-6
    # a different batch really gives different weights (the test can fail)
    assert np.median(np.abs(small_w - big_w)) > 1e-4


@pytest.mark.parametrize("objective", ["edm", "epsilon", "v", "flow"])
def test_every_prior_objective_trains(
    tiny_config: dict[str, Any], tmp_path: Path, objective: str
) -> None:
    tiny_config["mode"] = "pixel"
    del tiny_config["autoencoder"]  # a pixel model has none (the keys would be warned about)
    tiny_config["prior"].update(objective=objective, steps=3)
    model = train(None, tiny_config, out=tmp_path / objective)
    assert model.prior is not None
    rows = [
        json.loads(r) for r in (tmp_path / objective / "metrics.jsonl").read_text().splitlines()
    ]
    assert all(np.isfinite(r["loss"]) for r in rows)
