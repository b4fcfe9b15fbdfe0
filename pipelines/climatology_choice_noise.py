"""How the climatology choice (`data.climatology: auto`) varies with the seed of its hide patterns.

For each seed of ``run.seed`` and each number of draws per validation field, the
first-guess RMSE at hidden validation points with the per-point mean and with
the seasonal cycle (`sparsediff.training.climatology_choice.guess_rmse`'s
measure), and their ratio::

    python pipelines/climatology_choice_noise.py configs/demo.yaml --seeds 0 1 2 3 --draws 8 32
"""

from __future__ import annotations

import argparse

import torch

from sparsediff.training.climatology_choice import guess_rmse
from sparsediff.training.config import TrainConfig, load_config
from sparsediff.training.data import prepare_data


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="training config with data.climatology_dim")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--draws", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = load_config(args.config)

    def variant(seed: int, kind: str) -> TrainConfig:
        run = base.run.model_copy(update={"seed": seed})
        data = base.data.model_copy(update={"climatology": kind})
        return base.model_copy(update={"run": run, "data": data})

    prepared = {k: prepare_data(variant(0, k)) for k in ("mean", "seasonal")}
    print("draws seed   mean  seasonal  ratio")
    for draws in args.draws:
        for seed in args.seeds:
            cfg = variant(seed, "auto")
            m, s = (guess_rmse(cfg, prepared[k], draws=draws) for k in ("mean", "seasonal"))
            if m is None or s is None:
                raise SystemExit("no hidden validation point: nothing to compare")
            print(f"{draws:5d} {seed:4d} {m:.4f}  {s:.4f}  {s / m:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
