"""The metrics log of a training run: ``metrics.jsonl``, ``metrics.csv`` and TensorBoard.

Rank 0 appends one row per logged step (stage, step, loss, MSE, learning rate,
samples per second, and the validation RMSE when it was evaluated) to
``metrics.jsonl`` and ``metrics.csv`` in the run directory, and to TensorBoard
events when ``tensorboard`` is installed.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog"]


class MetricsLog:
    """Metrics of a training run, one row per logged step, in its run directory.

    Parameters
    ----------
    out
        The run directory (created when the log is enabled).
    enabled
        Whether this process writes (rank 0 only); a disabled log ignores rows.
    """

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.out = out
        self.tb: Any = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        """Append ``row`` (``stage``, ``step``, ``loss``, ...) with the time, to every file."""
        if not self.enabled:
            return
        row = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **row}
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        csv_path = self.out / "metrics.csv"
        fields = ["time", "stage", "step", "loss", "mse", "lr", "samples_per_s", "val_rmse"]
        new = not csv_path.exists()
        with csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "step":
                    self.tb.add_scalar(f"{row['stage']}/{k}", v, row["step"])

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.tb is not None:
            self.tb.close()
