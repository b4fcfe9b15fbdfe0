"""Latent vs pixel-space sampling on CPU: wall time and peak memory, as ratios.

Two cases, batch 1, one variable, randomly initialised networks (time and
memory do not depend on the weights):

- 2D: a 128² field; latent = 32² (autoencoder factor 4);
- 3D: a 64³ volume; latent = 16³.

Both sides use the same denoiser (a :class:`~sparsediff.models.unet.UNet` with
the same widths, blocks and attention levels in an
:class:`~sparsediff.models.precond.EDMPrecond`) and the same number of model
calls (``--steps`` DPM-Solver++(2M) steps = ``--steps`` calls). The work timed is
:func:`sparsediff.filling.sampling.fill_windows` — the per-window core of a fill:

- latent: encode the observed field, sample the latent, decode;
- pixel: sample at full resolution (zero-filled values + mask as condition).

Each of the four runs is a fresh subprocess: build the nets and the input, read
the peak RSS (``VmHWM``) as the baseline, make one warm-up denoiser call (and one
encode + decode) at the same shapes, then one timed sampling run; the memory
figure is the rise of ``VmHWM`` over the baseline (the warm-up never needs more
than the run itself).

Usage::

    python benchmarks/bench_latent_vs_pixel.py [--steps 16] [--threads 1]
        [--size-2d 128] [--size-3d 64] [--widths-2d 64 128 256] [--widths-3d 32 64 128]
        [--ae-widths 16 32 48] [--only 2d 3d]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from _common import load_line, peak_rss_mib


def denoiser_spec(args: argparse.Namespace, dims: int) -> dict[str, Any]:
    """The denoiser UNet settings shared by the latent and the pixel side."""
    if dims == 2:
        return {
            "widths": tuple(args.widths_2d),
            "blocks_per_level": args.blocks_2d,
            "attention_levels": tuple(args.attention_2d),
        }
    return {
        "widths": tuple(args.widths_3d),
        "blocks_per_level": args.blocks_3d,
        "attention_levels": tuple(args.attention_3d),
    }


def child_args(args: argparse.Namespace) -> list[str]:
    """The options of this run, to pass on to a child process."""
    out = ["--steps", str(args.steps), "--threads", str(args.threads)]
    out += ["--size-2d", str(args.size_2d), "--size-3d", str(args.size_3d)]
    out += ["--blocks-2d", str(args.blocks_2d), "--blocks-3d", str(args.blocks_3d)]
    out += ["--latent", str(args.latent)]
    for name in ("widths_2d", "attention_2d", "widths_3d", "attention_3d", "ae_widths"):
        out += ["--" + name.replace("_", "-"), *map(str, getattr(args, name))]
    return out


def child(args: argparse.Namespace, dims: int, space: str) -> dict[str, Any]:
    """Build one case, warm up, run the sampling once; return time and memory."""
    import torch

    torch.set_num_threads(args.threads)
    from sparsediff.data.stats import Stats, VariableStats
    from sparsediff.filling.sampling import FillOptions, fill_windows
    from sparsediff.model import Model
    from sparsediff.models.autoencoder import MaskedAutoencoder
    from sparsediff.models.conditioning import latent_condition, pixel_condition
    from sparsediff.models.precond import EDMPrecond
    from sparsediff.models.unet import UNet

    torch.manual_seed(0)
    size = args.size_2d if dims == 2 else args.size_3d
    spatial = (size,) * dims
    spec = denoiser_spec(args, dims)
    ae = None
    if space == "latent":
        ae = MaskedAutoencoder(
            1, spatial_dims=dims, widths=tuple(args.ae_widths), latent_channels=args.latent
        ).eval()
        channels, cond_channels = args.latent, args.latent + 1
    else:
        channels, cond_channels = 1, 2
    backbone = UNet(
        spatial_dims=dims,
        in_channels=channels,
        out_channels=channels,
        cond_channels=cond_channels,
        **spec,
    )
    prior = EDMPrecond(backbone, cond_channels=cond_channels).eval()
    config = {
        "variables": ["x"],
        "dims": [f"d{i}" for i in range(dims)],
        "window": list(spatial),
        "mode": space,
        "latent_scale": 1.0,
    }
    model = Model(ae, prior, Stats({"x": VariableStats(0.0, 1.0)}), config)
    g = torch.Generator().manual_seed(1)
    values = torch.randn(1, 1, *spatial, generator=g)
    observed = torch.rand(1, 1, *spatial, generator=g) < 0.7
    n_params = {
        "denoiser": sum(p.numel() for p in prior.parameters()),
        "autoencoder": sum(p.numel() for p in ae.parameters()) if ae is not None else 0,
    }
    base = peak_rss_mib()

    with torch.no_grad():  # warm-up: one denoiser call (and one encode + decode)
        if ae is not None:
            cond = latent_condition(ae, values, observed, 1.0)
            x = torch.randn(1, channels, *cond.shape[2:])
            ae.decode(prior(x, torch.ones(1), cond))
        else:
            cond = pixel_condition(values, observed)
            prior(torch.randn(1, 1, *spatial), torch.ones(1), cond)
        del cond

    opts = FillOptions(steps=args.steps, sampler="dpmpp_2m")
    t0, c0 = time.perf_counter(), time.process_time()
    out = fill_windows(model, values, observed, [(0,)], opts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if out.shape != values.shape or not bool(torch.isfinite(out).all()):
        raise RuntimeError(f"bad sample: shape {tuple(out.shape)} or non-finite values")
    peak = peak_rss_mib()
    return {
        "dims": dims,
        "space": space,
        "shape": list(spatial),
        "sampled_shape": [channels, *(s // (ae.factor if ae else 1) for s in spatial)],
        "params": n_params,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": peak,
        "base_rss_mib": base,
        "rise_mib": peak - base,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    """Parse options, run the four cases in fresh subprocesses, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="DPM-Solver++(2M) steps = calls")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--size-2d", type=int, default=128)
    parser.add_argument("--size-3d", type=int, default=64)
    parser.add_argument("--widths-2d", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--blocks-2d", type=int, default=2)
    parser.add_argument("--attention-2d", type=int, nargs="*", default=[2])
    parser.add_argument("--widths-3d", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--blocks-3d", type=int, default=1)
    parser.add_argument("--attention-3d", type=int, nargs="*", default=[])
    parser.add_argument("--ae-widths", type=int, nargs="+", default=[16, 32, 48])
    parser.add_argument("--latent", type=int, default=4, help="latent channels")
    parser.add_argument("--only", nargs="*", default=["2d", "3d"], choices=["2d", "3d"])
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if len(args.ae_widths) != 3:
        parser.error("--ae-widths needs 3 levels (downsampling factor 4)")
    if args.child:
        print(json.dumps(child(args, int(args.child[0]), args.child[1])))
        return

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU, {os.cpu_count()} cores, {args.threads} torch thread(s); "
        f"batch 1, {args.steps} DPM-Solver++(2M) steps = {args.steps} denoiser calls each side; "
        f"autoencoder widths {args.ae_widths} (factor 4), latent channels {args.latent}"
    )
    print(load_line("at start") + " -- other processes may share these cores")
    t_all = time.perf_counter()
    results: dict[tuple[int, str], dict[str, Any]] = {}
    for which in args.only:
        dims = int(which[0])
        for space in ("latent", "pixel"):
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                *child_args(args),
                "--child",
                str(dims),
                space,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{which} {space} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results[(dims, space)] = r
            print(
                f"  {which} {space}: {r['wall_s']:.2f} s, +{r['rise_mib']:.0f} MiB "
                f"({load_line('now')})",
                flush=True,
            )

    header = (
        f"{'case':<10} {'space':<7} {'sampled at':<14} {'denoiser':>22} {'params':>10} "
        f"{'wall s':>7} {'cpu s':>7} {'peak MiB':>8} {'rise MiB':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for (dims, space), r in results.items():
        spec = denoiser_spec(args, dims)
        desc = f"{list(spec['widths'])} b{spec['blocks_per_level']}"
        if spec["attention_levels"]:
            desc += f" a{list(spec['attention_levels'])}"
        case = "x".join(map(str, r["shape"]))
        sampled = "x".join(map(str, r["sampled_shape"]))
        params = r["params"]["denoiser"] + r["params"]["autoencoder"]
        print(
            f"{case:<10} {space:<7} {sampled:<14} {desc:>22} {params:>10,} "
            f"{r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} {r['peak_rss_mib']:>8.0f} "
            f"{r['rise_mib']:>8.0f}"
        )
    print()
    print(
        f"{'case':<14} {'time latent/pixel':>18} {'cpu latent/pixel':>17} {'mem latent/pixel':>17}"
    )
    for which in args.only:
        dims = int(which[0])
        lat, pix = results.get((dims, "latent")), results.get((dims, "pixel"))
        if lat is None or pix is None:
            continue
        case = "x".join(map(str, lat["shape"]))
        print(
            f"{which + ' ' + case:<14} {lat['wall_s'] / pix['wall_s']:>18.3f} "
            f"{lat['cpu_s'] / pix['cpu_s']:>17.3f} "
            f"{lat['rise_mib'] / max(pix['rise_mib'], 1e-9):>17.3f}"
        )
    print(
        "mem = rise of peak RSS over the process's peak after building nets and input "
        "(fresh process per case); latent includes encode + decode"
    )
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_all:.0f} s")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
