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

from sparsediff.method import build_method
from sparsediff.method.context_weight import guess_errors
from sparsediff.training.config import TrainConfig, load_config
from sparsediff.training.data import PreparedData, prepare_data, whole_field_batches
from sparsediff.training.from_config import initial_spec, settings_of


def rmse(cfg: TrainConfig, data: PreparedData, draws: int) -> float:
    """The first guess RMSE (variable units) at ``draws`` hidden draws of each validation field."""
    assert data.validation is not None
    method = build_method(initial_spec(cfg, data.facts))
    fit = guess_errors(method, whole_field_batches(data.validation), settings_of(cfg), draws=draws)
    assert fit is not None
    weight = fit.weight if cfg.guess_context_weight == "auto" else method.spec.context_weight
    return fit.rmse_at(weight) * data.stats[data.variables[0]].std


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
            m, s = (rmse(cfg, prepared[k], draws) for k in ("mean", "seasonal"))
            print(f"{draws:5d} {seed:4d} {m:.4f}  {s:.4f}  {s / m:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
