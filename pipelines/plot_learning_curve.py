"""Plot the learned gain against the share of training data from a quality run.

The learned gain of a model is ``1 - RMSE / RMSE of its own first guess`` on
the same held-out points (the ``<variant>_first_guess`` rows that
``pipelines/quality.py`` scores); variants are named ``share<percent>``::

    python pipelines/plot_learning_curve.py runs/q_a1b_curve/results.csv \
        docs/img/a1b_learning_curve.png --title "A1B, boxes:0.3"
"""

from __future__ import annotations

import argparse
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from sparsediff.atomic import save_figure


def gains(results: pd.DataFrame) -> pd.DataFrame:
    """Per holdout and ``share<N>`` variant: the share, RMSEs and the learned gain."""
    rows = []
    for holdout, part in results.groupby("holdout", sort=False):
        rmse = part.set_index("method")["rmse"]
        for name, value in rmse.items():
            m = re.fullmatch(r"share(\d+)", str(name))
            if m is None or f"{name}_first_guess" not in rmse:
                continue
            guess = float(rmse[f"{name}_first_guess"])
            rows.append(
                {
                    "holdout": holdout,
                    "share": int(m.group(1)),
                    "rmse": float(value),
                    "first_guess_rmse": guess,
                    "gain": 1.0 - float(value) / guess,
                }
            )
    return pd.DataFrame(rows).sort_values(["holdout", "share"])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results.csv of a quality run")
    parser.add_argument("out", help="figure to write (.png)")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    table = gains(pd.read_csv(args.results))
    print(table.to_string(index=False, float_format="%.4f"))
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for holdout, part in table.groupby("holdout", sort=False):
        ax.plot(part["share"], 100 * part["gain"], marker="o", label=str(holdout))
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(10, color="grey", lw=0.8, ls="--", label="target (RMSE <= 0.9x guess)")
    ax.set_xlabel("share of the training years used (%)")
    ax.set_ylabel("learned gain: 1 - RMSE / first-guess RMSE (%)")
    ax.set_xticks(sorted(table["share"].unique()))
    ax.set_title(args.title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
