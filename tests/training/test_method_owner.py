"""The method owns its whole life: training, the config and model loading ask METHODS.

A toy method registered from this file (a pixel prior with its own window
factor, its own stage setup and no calibration) is validated, trained, saved
and loaded without any code outside ``sparsediff.method`` knowing its name;
and no module of ``sparsediff.training`` names a mode.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

import sparsediff
from sparsediff.errors import CheckpointError, ConfigError
from sparsediff.method import METHODS
from sparsediff.method.base import TrainBatch, TrainSettings, WindowFactors
from sparsediff.method.latent import LatentMethod
from sparsediff.method.options import FillOptions
from sparsediff.method.pixel import PixelMethod
from sparsediff.training.config import load_config, unread_keys
from sparsediff.training.trainer import train

PACKAGE = Path(sparsediff.__file__).parent


class ToyMethod(PixelMethod):
    """A pixel prior whose windows must be divisible by 4, which counts its windows first."""

    mode: ClassVar[str] = "toy"
    own_keys: ClassVar[tuple[str, ...]] = ()
    estimated: ClassVar[list[str]] = []

    @classmethod
    def window_factors(cls, arch: dict[str, Any]) -> WindowFactors:
        return WindowFactors(latent=1, decoder=4)

    def before_stage(
        self,
        stage: str,
        sample: Callable[[int], Iterable[TrainBatch]],
        settings: TrainSettings,
        reduce: Callable[[Tensor], Tensor],
    ) -> dict[str, Any]:
        # a spec field the toy "fits" before its stage: the windows it was shown
        count = reduce(torch.tensor([float(sum(b.values.shape[0] for b in sample(8)))]))
        return {"latent_scale": float(count[0])}

    def stage_estimate(
        self, stage: str, inputs: Tensor, positions: Any, opts: FillOptions
    ) -> Tensor:
        type(self).estimated.append(stage)
        return super().stage_estimate(stage, inputs, positions, opts)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> type[ToyMethod]:
    monkeypatch.setitem(METHODS, "toy", ToyMethod)
    monkeypatch.setattr(ToyMethod, "estimated", [])
    return ToyMethod


def _toy_config(tiny_config: dict[str, Any]) -> dict[str, Any]:
    tiny_config["mode"] = "toy"
    del tiny_config["autoencoder"]
    tiny_config["prior"]["steps"] = 2
    tiny_config["run"].update(eval_every=2, checkpoint_every=2)
    return tiny_config


def test_the_config_takes_the_window_factor_from_the_method(
    tiny_config: dict[str, Any], toy: type[ToyMethod]
) -> None:
    latent = copy.deepcopy(tiny_config)
    cfg = _toy_config(tiny_config)
    cfg["window"]["size"] = [6, 32]
    pixel = {**cfg, "mode": "pixel"}
    assert load_config(pixel).window.size == [6, 32]  # the pixel prior's factor 2 divides 6
    with pytest.raises(ConfigError, match=r"divisible by 4 .*decoder factor 4"):
        load_config(cfg)  # the toy's own factor 4 does not
    # the latent method's factor comes from its autoencoder widths: 2**(levels - 1)
    arch = load_config(latent).architecture()
    assert LatentMethod.window_factors(arch) == WindowFactors(latent=4, decoder=2)
    latent["autoencoder"]["encoder_widths"] = [8, 8]
    latent["window"]["size"] = [4, 32]
    assert load_config(latent).window.size == [4, 32]  # factor 2 x prior 2
    latent["autoencoder"]["encoder_widths"] = [8, 8, 8]
    with pytest.raises(ConfigError, match=r"divisible by 8 \(latent factor 4 x prior UNet"):
        load_config(latent)


def test_an_unknown_mode_is_one_config_error(tiny_config: dict[str, Any]) -> None:
    tiny_config["mode"] = "spectral"
    with pytest.raises(ConfigError, match="unknown mode 'spectral'; known: latent, pixel"):
        load_config(tiny_config)


def test_what_a_mode_reads_comes_from_its_method(
    tiny_config: dict[str, Any], toy: type[ToyMethod]
) -> None:
    cfg = _toy_config(tiny_config)
    cfg["stages"] = ["prior"]  # one stage: `stages` is not read
    cfg["prior"]["pixel_loss"] = "zero_filled"  # the pixel method's own key
    cfg["calibration"] = {"members": 4}  # the toy has no calibration
    refused, warned = unread_keys(load_config(cfg))
    assert refused == [
        "stages is read in latent mode only (toy mode trains the prior)",
        "prior.pixel_loss is read in pixel mode only (mode is toy)",
    ]
    assert warned == ["mode: toy ignores calibration.members (a toy model has no calibration)"]


def test_a_registered_method_is_trained_saved_and_loaded_by_the_generic_loop(
    tiny_config: dict[str, Any], toy: type[ToyMethod], tmp_path: Path
) -> None:
    model = train(None, _toy_config(tiny_config), out=tmp_path / "run")
    assert model.spec.mode == "toy"
    assert model.provenance["completed_stages"] == ["prior"]
    # before_stage ran once, before the prior, on at least 8 windows of one batch (16)
    assert 8 <= model.spec.latent_scale <= 16
    # the in-training evaluation asked the method for its estimate (steps 2 of 2)
    assert toy.estimated
    assert set(toy.estimated) == {"prior"}
    # no calibration: the method's own reason is recorded
    assert model.spec.calibration == "none: a toy model has no calibration"
    ckpt = json.loads(next((tmp_path / "run" / "checkpoints").glob("*/state.json")).read_text())
    assert ckpt["extra"]["fitted"] == {"latent_scale": model.spec.latent_scale}
    loaded = sparsediff.load(tmp_path / "run")
    assert loaded.spec == model.spec
    assert isinstance(loaded.method, ToyMethod)
    del METHODS["toy"]  # the fixture restores the registry either way
    with pytest.raises(CheckpointError, match="unknown mode 'toy'"):
        sparsediff.load(tmp_path / "run")


def _string_constants_and_mode_tests(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and node.value in ("latent", "pixel"):
            found.append(f"{path.name}:{node.lineno}: the mode name {node.value!r}")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr in ("mode", "kind") for s in sides):
                found.append(f"{path.name}:{node.lineno}: a test of the mode")
    return found


def test_training_never_names_or_tests_a_mode(tmp_path: Path) -> None:
    found = [
        hit
        for path in sorted((PACKAGE / "training").glob("*.py"))
        for hit in _string_constants_and_mode_tests(path)
    ]
    assert not found, "\n".join(found)
    # the check can fail: what the trainer and the config did before
    planted = tmp_path / "planted.py"
    planted.write_text('if cfg.mode == "pixel":\n    pass\nif spec.kind != x:\n    pass\n')
    assert len(_string_constants_and_mode_tests(planted)) == 3


def test_model_loading_names_no_network_class_and_pixel_does_not_import_latent() -> None:
    for path in (PACKAGE / "model.py", PACKAGE / "model_files.py"):
        text = path.read_text()
        assert "CompletionAutoencoder" not in text, path.name
        assert "EDMPrecond" not in text, path.name
    imports = [
        n.module
        for n in ast.walk(ast.parse((PACKAGE / "method" / "pixel.py").read_text()))
        if isinstance(n, ast.ImportFrom)
    ]
    assert "sparsediff.method.guidance" in imports
    assert "sparsediff.method.latent" not in imports


def test_a_checkpoint_written_before_fitted_resumes_with_its_latent_scale(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    # checkpoints used to keep the one fitted spec field as extra["latent_scale"];
    # resuming from one, mid prior, must give the uninterrupted run's weights
    out = tmp_path / "run"
    full = train(None, tiny_config, out=out)
    root = out / "checkpoints"
    mid = root / "prior-00000003"
    state = json.loads((mid / "state.json").read_text())
    assert state["extra"]["fitted"] == {"latent_scale": full.spec.latent_scale}
    state["extra"] = {"completed": ["autoencoder"], "latent_scale": full.spec.latent_scale}
    (mid / "state.json").write_text(json.dumps(state))
    for later in [*root.glob("prior-0000000[4-9]"), *root.glob("prior_done-*")]:
        for f in later.iterdir():
            f.unlink()
        later.rmdir()
    (root / "latest.json").write_text(json.dumps({"checkpoint": mid.name}))
    resumed = train(None, tiny_config, out=out, resume=True)
    assert resumed.spec == full.spec
    for name, net in full.nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, resumed.nets[name].state_dict()[key]), f"{name}.{key}"
