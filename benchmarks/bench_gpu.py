"""Fill throughput on an accelerator: points/s, peak memory and an MFU estimate.

Fills ``--months`` OSTIA months (the 54 months of the sample file repeated
end to end, so any count works; cloud:0.3 gaps hidden with seed 0, land as
the invalid mask) with a trained OSTIA model (``--model``, default the
shipped demo model) at ``--members``, with the fill's default rows per call
(from the free memory) unless ``--batch-size`` is given, and the fill's
``--precision`` / ``--compile`` options. One warm-up fill of one month
comes first (compilation, cuDNN autotuning), then ``--repeats`` timed fills.

Reported per run: wall seconds, grid points/s (members x months x 18 x 432,
every point of the filled field), windows/s (model rows: windows x members),
peak memory (``torch.cuda.max_memory_allocated`` on a GPU; the process's
peak RSS on a CPU) and an MFU estimate: the FLOPs of the network calls,
counted once with `torch.utils.flop_counter.FlopCounterMode` on a
one-month fill, scaled by the rows computed, divided by the wall time and by
``--peak-tflops`` (default: 989 for bf16 / 495 for float32 (TF32) on an H100,
1979 / 989 on a B200-class name, else 64 GFLOP/s per CPU thread). The MFU
counts convolutions and matmuls only; the rest of the fill (first guess,
blending, xarray) is in the wall time, so it is a lower bound on the
networks' own utilisation.

Usage (GPU)::

    python benchmarks/bench_gpu.py --device cuda --months 216 --members 8 \\
        --precision bfloat16 --compile inductor

CPU smoke run (what the test runs)::

    python benchmarks/bench_gpu.py --device cpu --months 1 --members 1 --steps 1 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import load_line, peak_rss_mib

DEMO_MODEL = Path(__file__).resolve().parents[1] / "sparsediff" / "assets" / "demo_model"


def months_of_ostia(n: int) -> tuple[Any, Any]:
    """``n`` months of OSTIA with cloud:0.3 hidden (the record repeated), and the land mask."""
    import pandas as pd
    import xarray as xr

    from sparsediff.data.sample_data import open_ostia
    from sparsediff.evaluation.holdout import make_holdout

    ds = open_ostia().load()
    var = next(iter(ds.data_vars))
    land = ds[var].isnull().all("time")
    gappy, _ = make_holdout(
        ds, "cloud:0.3", dims=("latitude", "longitude"), seed=0, invalid_along="time"
    )
    reps = -(-n // gappy.sizes["time"])
    out = xr.concat([gappy] * reps, dim="time").isel(time=slice(0, n))
    # monthly dates on from the record's first (a seasonal model evaluates its cycle there)
    first = pd.Timestamp(ds["time"].values[0])
    dates = pd.date_range(first, periods=n, freq=pd.DateOffset(months=1))
    return out.assign_coords(time=dates), land


def peak_tflops(device: Any, precision: str, threads: int) -> float:
    """A nominal dense peak of the device (TFLOP/s) for the MFU estimate."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bf16 = precision == "bfloat16"
        if "H100" in name or "H200" in name:
            return 989.0 if bf16 else 495.0
        if "B200" in name or "GB200" in name:
            return 1979.0 if bf16 else 989.0
        if "A100" in name:
            return 312.0 if bf16 else 156.0
        return 100.0
    return 0.064 * threads


def flops_per_row(model: Any, sub: Any, land: Any, kw: dict[str, Any]) -> tuple[float, int]:
    """Network FLOPs per model row, from one counted fill of one month, and that month's rows."""
    from torch.utils.flop_counter import FlopCounterMode

    import sparsediff

    rows = RowCounter(model)
    counter = FlopCounterMode(display=False)
    with counter, rows:
        sparsediff.fill(sub.isel(time=slice(0, 1)), model, **{**kw, "compile": "off"})
    return counter.get_total_flops() / max(1, rows.n), rows.n


class RowCounter:
    """Count the rows (windows x members) the model's completions are called on."""

    def __init__(self, model: Any) -> None:
        self.cls = type(model.method)
        self.n = 0

    def __enter__(self) -> RowCounter:
        orig = self.cls.complete_parts
        self.orig = orig

        def run(method: Any, inputs: Any, keys: Any, opts: Any, **kw: Any) -> Any:
            self.n += len(keys)
            return orig(method, inputs, keys, opts, **kw)

        self.cls.complete_parts = run  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.cls.complete_parts = self.orig  # type: ignore[method-assign]


def main() -> None:
    """Fill, time and print one JSON line per run plus a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--months", type=int, default=216)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="default: the fill's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: from memory")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--compile", default="off", help="torch.compile backend or off")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()

    import math

    import torch

    torch.set_num_threads(args.threads)
    import sparsediff
    from sparsediff.devices import resolve_device

    device = torch.device(resolve_device(args.device))
    cuda = device.type == "cuda"
    print(
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if cuda else f", {args.threads} thread(s)")
    )
    print(load_line("at start"))
    model = sparsediff.load(args.model)
    var = model.variables[0]
    sub, land = months_of_ostia(args.months)
    kw: dict[str, Any] = {
        "members": args.members,
        "invalid": land,
        "device": str(device),
        "precision": args.precision,
        "compile": args.compile,
    }
    if args.steps is not None:
        kw["steps"] = args.steps
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    per_row, _ = flops_per_row(model, sub, land, kw)
    sparsediff.fill(sub.isel(time=slice(0, 1)), model, **kw)  # warm-up
    peak = args.peak_tflops or peak_tflops(device, args.precision, args.threads)
    points = args.members * math.prod(sub[var].shape)
    print(f"{'run':>3} {'wall s':>8} {'points/s':>12} {'rows/s':>9} {'peak MiB':>9} {'MFU':>7}")
    for i in range(args.repeats):
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.synchronize(device)
        with RowCounter(model) as rows:
            t0 = time.perf_counter()
            out = sparsediff.fill(sub, model, **kw)
            _ = out[var].values
            if cuda:
                torch.cuda.synchronize(device)
            wall = time.perf_counter() - t0
        mem = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss_mib()
        mfu = per_row * rows.n / wall / (peak * 1e12)
        row = {
            "run": i,
            "wall_s": round(wall, 3),
            "points_per_s": round(points / wall),
            "rows_per_s": round(rows.n / wall, 1),
            "peak_mib": round(mem, 1),
            "mfu": mfu,
            "gflop_per_row": per_row / 1e9,
            "peak_tflops": peak,
        }
        print(
            f"{i:3d} {wall:8.2f} {points / wall:12,.0f} {rows.n / wall:9.1f} {mem:9.0f} {mfu:7.2%}"
        )
        print("json " + json.dumps(row))
    print(load_line("at end"))


if __name__ == "__main__":
    main()
