"""Real multi-process DDP on CPU (Gloo) launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from sparsediff.training.checkpoint import load_checkpoint
from tests.training.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_train.py")


def test_torchrun_two_ranks_in_sync_and_match_one_process(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["autoencoder"]["steps"] = 8
    tiny_config["prior"]["steps"] = 8
    tiny_config["optim"]["batch_size"] = 4  # global: 2 per rank under DDP
    cfg = write_config(tiny_config, tmp_path / "cfg.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--standalone",
            str(SCRIPT),
            str(cfg),
            str(tmp_path / "ddp"),
        ],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    subprocess.run(
        [sys.executable, str(SCRIPT), str(cfg), str(tmp_path / "single")],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    r0 = load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    one = load_file(str(tmp_path / "single" / "rank0.safetensors"))
    assert r0.keys() == r1.keys() == one.keys()
    for k in r0:
        # ranks stay in sync: identical weights
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
    # the 2-rank run matches one process with the same global batch: every sample gets
    # the same keyed noise and per-sample losses are averaged, so only float reduction
    # order differs
    worst = max(float((r0[k] - one[k]).abs().max()) for k in r0)
    scale = max(float(one[k].abs().max()) for k in one)
    assert worst <= 1e-4 * max(scale, 1.0), f"DDP vs single process: max |diff| {worst}"
    # only rank 0 wrote the model
    assert (tmp_path / "ddp" / "model" / "config.json").exists()


def test_torchrun_keep_best_restores_the_same_weights_on_every_rank(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    """Only rank 0 evaluates: its best evaluation's weights reach every rank."""
    tiny_config["stages"] = ["autoencoder"]
    tiny_config["autoencoder"]["steps"] = 8
    tiny_config["optim"]["lr"] = 1e-2  # the rising curve of tests/training/test_keep_best.py
    tiny_config["run"]["keep_best"] = 0.0  # restore on any rise (it is under 2 %)
    tiny_config["run"].update(eval_every=2, checkpoint_every=2, device="cpu")
    cfg = write_config(tiny_config, tmp_path / "cfg.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    subprocess.run(
        [*cmd, "--standalone", str(SCRIPT), str(cfg), str(out)],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    curve = {r["step"]: r["val_rmse"] for r in rows if "val_rmse" in r}
    # the premise, best before the end, as measured on x86-64: another CPU's rounding
    # may give another curve, which skips (the ranks must agree whatever it is)
    r0 = load_file(str(out / "rank0.safetensors"))
    r1 = load_file(str(out / "rank1.safetensors"))
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "ranks differ"
    if min(curve, key=curve.__getitem__) != 6 or not curve[8] > curve[6]:
        pytest.skip(f"the validation curve on this CPU has another shape: {curve}")
    r0 = load_file(str(out / "rank0.safetensors"))
    r1 = load_file(str(out / "rank1.safetensors"))
    _, best, _ = load_checkpoint(out / "checkpoints" / "autoencoder-00000006")
    _, last, _ = load_checkpoint(out / "checkpoints" / "autoencoder-00000008")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
        assert torch.equal(r0[k], best["ema"][k.removeprefix("autoencoder.")]), k
    assert not all(torch.equal(r0[k], last["ema"][k.removeprefix("autoencoder.")]) for k in r0)
