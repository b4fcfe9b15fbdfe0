"""Refit a trained model's calibration (departure scale, spread factors) with today's code.

The networks stay as they are; the calibration is fitted again on the
validation part of the model's training config, exactly as the trainer does
after its last stage (same windows, hidden points, members and steps), and
the model is saved under a new name, its provenance recording the
recalibration (``provenance["recalibration"]``: when, the config and its
``calibration`` section, the result). It lets a change of the calibration be
scored on models already trained, without training them again::

    python pipelines/recalibrate.py CONFIG MODEL OUT [--powers 0]

``--powers`` overrides the candidate powers of the spread's scaling by the
local variability (default: the config's ``calibration.variability``; ``--powers 0``
fits without it, the calibration of earlier versions).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import torch

import sparsediff
from sparsediff.method import calibration as cal
from sparsediff.method.variability import POWERS
from sparsediff.training.config import load_config
from sparsediff.training.data import fixed_batches, prepare_data
from sparsediff.training.from_config import hide_spec, settings_of

__all__ = ["main", "recalibrate"]


def recalibrate(
    config: str, model_path: str, out: str, *, powers: Sequence[float] | None = None
) -> str:
    """Refit the calibration of ``model_path`` on its config's validation part; save to ``out``.

    Returns the calibration's one-line description.
    """
    cfg = load_config(config)
    model = sparsediff.load(model_path)
    data = prepare_data(cfg)
    if data.validation is None:
        raise SystemExit("error: the config has no validation part to calibrate on")
    c = cfg.calibration
    batches = fixed_batches(
        data.validation, max_windows=c.max_windows, batch_size=cfg.optim.batch_size
    )
    spec = model.spec.model_copy(update={"departure_scale": 1.0})
    method = sparsediff.method.build_method(spec, model.nets)
    updates, note = cal.fit_calibration(
        method,  # type: ignore[arg-type]
        batches,
        settings_of(cfg),
        hide=hide_spec(c.hide),
        members=c.members,
        steps=c.steps,
        powers=(POWERS if c.variability else (0.0,)) if powers is None else tuple(powers),
    )
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(config),
        "calibration": c.model_dump(mode="json"),
        "note": note,
    }
    provenance = {**model.provenance, "recalibration": record}
    model = dataclasses.replace(
        model,
        spec=spec.model_copy(update={**updates, "calibration": note}),
        provenance=provenance,
    )
    model.save(out, overwrite=True)
    return note


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python pipelines/recalibrate.py CONFIG MODEL OUT [--powers ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--powers", type=float, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    note = recalibrate(args.config, args.model, args.out, powers=args.powers)
    print(f"{note}\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
