"""How few solver steps match 1000-step ancestral sampling? (trained OSTIA model)

Needs a trained OSTIA model (``--model``, default the shipped demo model,
trained on all but the last 6 months). Held-out test:
:func:`sparsediff.evaluation.holdout.make_holdout` hides a ``"cloud:0.3"``
pattern (seed ``--seed``) among the observed points of the last 6 months of
OSTIA SST (the months the demo config never trains on). The last ``--months``
of them (default all 6; fewer to shorten the 1000-step reference) are filled,
the whole 18 x 432 grid, 36 tiles per month; when the model takes
neighbouring months as context, the months before them that its context
offsets reach are filled too (so the first scored month has its context) but
not scored. Land (NaN at every one of the 54 steps) is passed as the invalid
mask, so a subset sees the same land as the full record.

Each run is ``sparsediff.fill(..., members=--members)``, i.e. the v2
completion ``guess + regression + spread_scale * (sample - regression)`` per
member; scores over the held-out points (cos-latitude weighted, in K):

- RMSE of the ensemble mean (:func:`sparsediff.evaluation.metrics.rmse`),
- CRPS of the ensemble (:func:`sparsediff.evaluation.metrics.crps`).

Reference: ``ancestral`` (Euler ancestral, eta = 1) at ``--ref-steps`` steps.
Candidates: ``dpmpp_2m`` and ``heun`` at each of ``--steps``. A candidate
*matches* when both its RMSE and its CRPS are within ``--tol`` (2 %) of the
reference's. The probability-flow ODE the two solvers integrate need not give
the same ensemble as the ancestral (SDE) sampler when the model is imperfect,
so each candidate is also compared with the ODE limit, ``dpmpp_2m`` at
``--ode-ref-steps`` (64) steps: that is the solver's convergence alone.
As a yardstick for the sampling noise, ``dpmpp_2m`` at the largest step count
is also run with seeds + 1 .. + ``--noise-seeds`` (other initial noise): the
largest relative change of RMSE/CRPS from the seed alone.

Usage::

    python benchmarks/bench_steps.py [--model DIR] [--months 6] [--members 4] [--ref-steps 1000]
        [--steps 4 6 8 12 16 24 32] [--ode-ref-steps 64] [--batch-size 144]
        [--tol 0.02] [--noise-seeds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from _common import load_line

DEMO_MODEL = Path(__file__).resolve().parents[1] / "sparsediff" / "assets" / "demo_model"


def main() -> None:
    """Run the reference and the candidates; print the table and the fewest matching steps."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=DEMO_MODEL,
        help="a trained OSTIA model directory (default: the shipped demo model)",
    )
    parser.add_argument("--months", type=int, default=6, help="held-out months filled (<= 6)")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--ref-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 6, 8, 12, 16, 24, 32])
    parser.add_argument(
        "--ode-ref-steps", type=int, default=64, help="dpmpp_2m steps of the ODE limit"
    )
    parser.add_argument(
        "--noise-seeds", type=int, default=3, help="extra seeds for the noise yardstick"
    )
    parser.add_argument("--samplers", nargs="+", default=["dpmpp_2m", "heun"])
    parser.add_argument("--batch-size", type=int, default=144, help="windows per model call")
    parser.add_argument("--tol", type=float, default=0.02, help="relative tolerance")
    parser.add_argument("--seed", type=int, default=0, help="holdout and sampling seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    if not 1 <= args.months <= 6:
        parser.error("--months must be in 1..6 (the held-out months)")

    import torch

    torch.set_num_threads(args.threads)
    import sparsediff
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.diffusion.samplers import model_calls
    from sparsediff.evaluation.holdout import make_holdout
    from sparsediff.evaluation.metrics import crps, rmse

    print(f"torch {torch.__version__}, CPU, {os.cpu_count()} cores, {args.threads} torch thread(s)")
    print(load_line("at start") + " -- other processes may share these cores")
    t_all = time.perf_counter()

    model = sparsediff.load(args.model)
    var = model.variables[0]
    ds = open_ostia()
    nt = ds.sizes["time"]
    gappy, held = make_holdout(
        ds,
        "cloud:0.3",
        dims=("latitude", "longitude"),
        seed=args.seed,
        invalid_along="time",
        region={"time": slice(nt - 6, nt)},
    )
    land = ds[var].isnull().all("time")
    sel = {"time": slice(nt - args.months, None)}
    mask, truth = held[var].isel(sel), ds[var].isel(sel)
    spec = model.spec
    before = 0  # earlier months filled (not scored) so the first scored month has its context
    if spec.n_context and spec.context_dim == "time":
        before = max(0, -min(spec.context_offsets))
    sub = gappy.isel(time=slice(max(0, nt - args.months - before), None))
    n_held = int(mask.sum())
    print(
        f"held out: cloud:0.3 (seed {args.seed}) over the last 6 months; scored: last "
        f"{args.months} month(s), {n_held} held-out points; members {args.members}; "
        f"batch {args.batch_size} windows per call; {before} earlier month(s) filled as context"
    )

    def run(sampler: str, steps: int, seed: int = args.seed) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = sparsediff.fill(
            sub,
            model,
            members=args.members,
            steps=steps,
            sampler=sampler,
            seed=seed,
            batch_size=args.batch_size,
            invalid=land,
            invalid_along=None,
        )
        ens = out[var].isel(time=slice(-args.months, None)).load()
        wall = time.perf_counter() - t0
        r = float(rmse(ens.mean("member"), truth, mask))
        c = float(crps(ens, truth, mask))
        return {"sampler": sampler, "steps": steps, "rmse": r, "crps": c, "wall_s": wall}

    sparsediff.fill(sub.isel(time=slice(0, 1)), model, steps=2, invalid=land, invalid_along=None)
    ref = run("ancestral", args.ref_steps)
    print(
        f"reference ancestral {args.ref_steps} steps: RMSE {ref['rmse']:.4f} K, "
        f"CRPS {ref['crps']:.4f} K ({ref['wall_s']:.0f} s)",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for sampler in args.samplers:
        for steps in args.steps:
            r = run(sampler, steps)
            r["calls"] = model_calls(sampler, steps)
            r["d_rmse"] = r["rmse"] / ref["rmse"] - 1
            r["d_crps"] = r["crps"] / ref["crps"] - 1
            r["match"] = abs(r["d_rmse"]) <= args.tol and abs(r["d_crps"]) <= args.tol
            rows.append(r)
    top = max(args.steps)
    base = (
        next(r for r in rows if r["sampler"] == "dpmpp_2m" and r["steps"] == top)
        if ("dpmpp_2m" in args.samplers)
        else run("dpmpp_2m", top)
    )
    others = [run("dpmpp_2m", top, seed=args.seed + i) for i in range(1, args.noise_seeds + 1)]
    noise_rmse = max(abs(o["rmse"] / base["rmse"] - 1) for o in others)
    noise_crps = max(abs(o["crps"] / base["crps"] - 1) for o in others)
    ode = run("dpmpp_2m", args.ode_ref_steps)
    for r in rows:
        r["o_rmse"] = r["rmse"] / ode["rmse"] - 1
        r["o_crps"] = r["crps"] / ode["crps"] - 1
        r["o_match"] = abs(r["o_rmse"]) <= args.tol and abs(r["o_crps"]) <= args.tol

    header = (
        f"{'sampler':<10} {'steps':>5} {'calls':>5} {'RMSE K':>8} {'dRMSE':>7} "
        f"{'CRPS K':>8} {'dCRPS':>7} {'match':>5} {'wall s':>7} | "
        f"{'dRMSE_ode':>9} {'dCRPS_ode':>9} {'match_ode':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    print(
        f"{'ancestral':<10} {args.ref_steps:>5} {args.ref_steps:>5} {ref['rmse']:>8.4f} "
        f"{'ref':>7} {ref['crps']:>8.4f} {'ref':>7} {'':>5} {ref['wall_s']:>7.1f} | "
        f"{ref['rmse'] / ode['rmse'] - 1:>+9.2%} {ref['crps'] / ode['crps'] - 1:>+9.2%}"
    )
    print(
        f"{'dpmpp_2m':<10} {args.ode_ref_steps:>5} {args.ode_ref_steps:>5} {ode['rmse']:>8.4f} "
        f"{ode['rmse'] / ref['rmse'] - 1:>+7.2%} {ode['crps']:>8.4f} "
        f"{ode['crps'] / ref['crps'] - 1:>+7.2%} {'':>5} {ode['wall_s']:>7.1f} | "
        f"{'ode ref':>9} {'ode ref':>9}"
    )
    for r in rows:
        print(
            f"{r['sampler']:<10} {r['steps']:>5} {r['calls']:>5} {r['rmse']:>8.4f} "
            f"{r['d_rmse']:>+7.2%} {r['crps']:>8.4f} {r['d_crps']:>+7.2%} "
            f"{'yes' if r['match'] else 'no':>5} {r['wall_s']:>7.1f} | "
            f"{r['o_rmse']:>+9.2%} {r['o_crps']:>+9.2%} {'yes' if r['o_match'] else 'no':>9}"
        )
    print()
    for sampler in args.samplers:
        mine = sorted((r for r in rows if r["sampler"] == sampler), key=lambda r: r["steps"])
        ok = [r for r in mine if r["match"]]
        if not ok:
            print(
                f"{sampler}: no step count in {args.steps} within {args.tol:.0%} of the reference"
            )
            continue
        first = ok[0]
        stays = all(r["match"] for r in mine if r["steps"] >= first["steps"])
        print(
            f"{sampler}: fewest steps within {args.tol:.0%} of ancestral-{args.ref_steps}: "
            f"{first['steps']} ({first['calls']} model calls)"
            + ("" if stays else "; but some larger step counts fall outside again")
        )
    for sampler in args.samplers:
        mine = sorted((r for r in rows if r["sampler"] == sampler), key=lambda r: r["steps"])
        ok = [r for r in mine if r["o_match"]]
        if ok:
            stays = all(r["o_match"] for r in mine if r["steps"] >= ok[0]["steps"])
            print(
                f"{sampler}: fewest steps within {args.tol:.0%} of the ODE limit "
                f"(dpmpp_2m {args.ode_ref_steps}): {ok[0]['steps']} ({ok[0]['calls']} model calls)"
                + ("" if stays else "; but some larger step counts fall outside again")
            )
        else:
            print(f"{sampler}: no step count within {args.tol:.0%} of the ODE limit")
    print(
        f"sampling-noise yardstick: dpmpp_2m {top} steps, seeds {args.seed + 1}.."
        f"{args.seed + args.noise_seeds} vs {args.seed}: largest |dRMSE| {noise_rmse:.2%}, "
        f"largest |dCRPS| {noise_crps:.2%}"
    )
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_all:.0f} s")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
