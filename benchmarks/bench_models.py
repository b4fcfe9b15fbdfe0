"""Speed and memory of sparsediff's networks next to MONAI's equivalents (CPU).

For each pair of networks with the same widths / levels / blocks / latent channels:

- parameter count,
- forward + backward time, wall and process CPU (the CPU time is steadier on a
  shared machine): median of a few rounds after a warm-up, our net and MONAI's
  alternating in one process so both see the same background load,
- peak memory of one forward + backward: the rise of the peak resident set size
  (``ru_maxrss``) over its value after building the net and its input, measured in
  a fresh subprocess per network so that nothing else pollutes it.

Pairs: the 3D autoencoder at 64³ (batch 1, one variable) vs
``monai.networks.nets.AutoencoderKL``; the denoiser U-Net at 2D 128² and 3D 32³ vs
``monai.networks.nets.DiffusionModelUNet``.

Run (needs ``pip install monai einops``; about 4 minutes on 2 free cores, more on a busy machine)::

    python benchmarks/bench_models.py            # full table
    python benchmarks/bench_models.py --iters 5 --only unet2d_ours unet2d_monai
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

THREADS = 2

#: name -> (group, builder key, input description)
CASES: dict[str, dict[str, Any]] = {
    "ae3d_ours": {"group": "AE 3D 64³", "kind": "ae_ours", "spatial": (64, 64, 64)},
    "ae3d_ours_ckpt": {
        "group": "AE 3D 64³",
        "kind": "ae_ours",
        "spatial": (64, 64, 64),
        "checkpointing": True,
    },
    "ae3d_monai": {"group": "AE 3D 64³", "kind": "ae_monai", "spatial": (64, 64, 64)},
    "unet2d_ours": {"group": "UNet 2D 128²", "kind": "unet_ours", "spatial": (128, 128)},
    "unet2d_monai": {"group": "UNet 2D 128²", "kind": "unet_monai", "spatial": (128, 128)},
    "unet3d_ours": {"group": "UNet 3D 32³", "kind": "unet_ours", "spatial": (32, 32, 32)},
    "unet3d_monai": {"group": "UNet 3D 32³", "kind": "unet_monai", "spatial": (32, 32, 32)},
}

AE_WIDTHS = (32, 64, 128)
AE_LATENT = 4
AE_BLOCKS = 1
UNET_WIDTHS = (64, 128, 256)
UNET_BLOCKS = 2
UNET_ATTN = (2,)
UNET_CHANNELS = 4  # a latent with 4 channels
HEAD_CHANNELS = 64


def _build(case: dict[str, Any]) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    """Return the net and a closure computing a scalar loss of one forward pass."""
    spatial = tuple(case["spatial"])
    sd = len(spatial)
    ckpt = bool(case.get("checkpointing", False))
    g = torch.Generator().manual_seed(0)
    kind = case["kind"]
    if kind.startswith("ae"):
        x = torch.randn(1, 1, *spatial, generator=g)
        mask = torch.rand(1, 1, *spatial, generator=g) < 0.7
        if kind == "ae_ours":
            from sparsediff.models.autoencoder import MaskedAutoencoder

            net: torch.nn.Module = MaskedAutoencoder(
                1,
                spatial_dims=sd,
                widths=AE_WIDTHS,
                latent_channels=AE_LATENT,
                blocks_per_level=AE_BLOCKS,
                attention=True,
                checkpointing=ckpt,
            )

            def loss() -> torch.Tensor:
                x_hat, mean, _ = net(x, mask)
                return x_hat.square().mean() + mean.square().mean()

        else:
            from monai.networks.nets import AutoencoderKL

            net = AutoencoderKL(
                spatial_dims=sd,
                in_channels=2,  # values + mask, as ours
                out_channels=1,
                num_res_blocks=AE_BLOCKS,
                channels=AE_WIDTHS,
                attention_levels=(False,) * len(AE_WIDTHS),
                latent_channels=AE_LATENT,
                norm_num_groups=32,
                with_encoder_nonlocal_attn=True,
                with_decoder_nonlocal_attn=True,
                use_flash_attention=True,
            )
            inp = torch.cat([torch.where(mask, x, 0.0), mask.float()], dim=1)

            def loss() -> torch.Tensor:
                x_hat, mean, _ = net(inp)
                return x_hat.square().mean() + mean.square().mean()

        return net, loss

    x = torch.randn(1, UNET_CHANNELS, *spatial, generator=g)
    if kind == "unet_ours":
        from sparsediff.models.unet import UNet

        net = UNet(
            spatial_dims=sd,
            in_channels=UNET_CHANNELS,
            out_channels=UNET_CHANNELS,
            widths=UNET_WIDTHS,
            blocks_per_level=UNET_BLOCKS,
            attention_levels=UNET_ATTN,
            checkpointing=ckpt,
        )
        labels = torch.randn(1, generator=g)

        def loss() -> torch.Tensor:
            return net(x, labels).square().mean()

    else:
        from monai.networks.nets import DiffusionModelUNet

        net = DiffusionModelUNet(
            spatial_dims=sd,
            in_channels=UNET_CHANNELS,
            out_channels=UNET_CHANNELS,
            num_res_blocks=UNET_BLOCKS,
            channels=UNET_WIDTHS,
            attention_levels=tuple(i in UNET_ATTN for i in range(len(UNET_WIDTHS))),
            norm_num_groups=32,
            num_head_channels=HEAD_CHANNELS,
            use_flash_attention=True,
        )
        steps = torch.randint(0, 1000, (1,), generator=g)

        def loss() -> torch.Tensor:
            return net(x, steps).square().mean()

    return net, loss


def _pass(net: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> tuple[float, float]:
    """One forward + backward; returns its wall time and its process CPU time (s)."""
    net.zero_grad(set_to_none=True)
    t0, c0 = time.perf_counter(), time.process_time()
    loss().backward()
    return time.perf_counter() - t0, time.process_time() - c0


def _child_memory(name: str) -> dict[str, Any]:
    """Fresh process: parameter count and peak-RSS rise of one forward + backward."""
    torch.manual_seed(0)
    net, loss = _build(CASES[name])
    net.train()
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _pass(net, loss)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "name": name,
        "params": sum(p.numel() for p in net.parameters()),
        "peak_mib": (peak_kb - base_kb) / 1024,
    }


def _child_time(names: list[str], iters: int) -> dict[str, Any]:
    """One process per group: a warm-up each, then ``iters`` rounds alternating the nets.

    Alternating puts our net and MONAI's under the same background load, so their
    ratio stays meaningful on a shared machine.
    """
    torch.manual_seed(0)
    built = {name: _build(CASES[name]) for name in names}
    for net, loss in built.values():
        net.train()
        _pass(net, loss)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(iters):
        for name, (net, loss) in built.items():
            w, c = _pass(net, loss)
            wall[name].append(w)
            cpu[name].append(c)
    return {
        name: {"time_s": statistics.median(wall[name]), "cpu_s": statistics.median(cpu[name])}
        for name in names
    }


def _run_child(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the memory cases and the timing groups in subprocesses; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2, help="timed rounds per group")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run")
    parser.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-time", nargs="*", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.child_memory:
        print(json.dumps(_child_memory(args.child_memory)))
        return
    if args.child_time:
        print(json.dumps(_child_time(args.child_time, args.iters)))
        return

    import monai

    names = args.only or list(CASES)
    print(
        f"torch {torch.__version__}, monai {monai.__version__}, {THREADS} threads, batch 1, CPU; "
        f"time = median of {args.iters} alternating rounds after 1 warm-up; "
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    t_all = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = _run_child("--child-memory", name)
        r = results[name]
        print(f"  memory {name}: {r['params']:,} params, {r['peak_mib']:.0f} MiB", flush=True)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(CASES[name]["group"], []).append(name)
    for group, members in groups.items():
        times = _run_child("--child-time", *members, "--iters", str(args.iters))
        for name, t in times.items():
            results[name].update(t)
        print(
            f"  time {group}: "
            + ", ".join(
                f"{n} {t['time_s']:.2f} s (cpu {t['cpu_s']:.2f} s)" for n, t in times.items()
            )
        )

    header = (
        f"{'case':<14} {'net':<10} {'params':>12} {'wall s':>7} {'cpu s':>7} {'peak MiB':>9}"
        f" {'wall/MONAI':>11} {'cpu/MONAI':>10} {'mem/MONAI':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ref = results.get(name.split("_")[0] + "_monai")
        ratios = ["", "", ""]
        if ref is not None and ref is not r:
            ratios = [
                f"{r['time_s'] / ref['time_s']:.2f}x",
                f"{r['cpu_s'] / ref['cpu_s']:.2f}x",
                f"{r['peak_mib'] / max(ref['peak_mib'], 1e-9):.2f}x",
            ]
        print(
            f"{CASES[name]['group']:<14} {name.split('_', 1)[1]:<10} {r['params']:>12,} "
            f"{r['time_s']:>7.2f} {r['cpu_s']:>7.2f} {r['peak_mib']:>9.0f} "
            f"{ratios[0]:>11} {ratios[1]:>10} {ratios[2]:>10}"
        )
    print(
        f"\ntotal wall time {time.perf_counter() - t_all:.0f} s; "
        f"load average at end {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
