"""Speed and memory of sparsediff's networks next to MONAI's equivalents (CPU).

For each pair of networks with the same widths / levels / blocks / latent channels:

- parameter count,
- forward + backward time (median of a few iterations after a warm-up),
- peak memory of one forward + backward: the rise of the peak resident set size
  (``ru_maxrss``) over its value after building the net and its input, measured in
  a fresh subprocess per network so that nothing else pollutes it.

Pairs: the 3D autoencoder at 64³ (batch 1, one variable) vs
``monai.networks.nets.AutoencoderKL``; the denoiser U-Net at 2D 128² and 3D 32³ vs
``monai.networks.nets.DiffusionModelUNet``.

Run (needs ``pip install monai einops``; about 4–5 minutes on 2 free cores)::

    python benchmarks/bench_models.py            # full table
    python benchmarks/bench_models.py --iters 5 --only unet2d_ours unet2d_monai
"""

from __future__ import annotations

import argparse
import json
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


def _child(name: str, iters: int) -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    net, loss = _build(CASES[name])
    net.train()
    params = sum(p.numel() for p in net.parameters())
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(iters + 1):  # the first is a warm-up
        net.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss().backward()
        dt = time.perf_counter() - t0
        if i:
            times.append(dt)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "name": name,
                "params": params,
                "time_s": statistics.median(times),
                "peak_mib": (peak_kb - base_kb) / 1024,
            }
        )
    )


def main() -> None:
    """Run every case in its own subprocess and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2, help="timed iterations per net")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.iters)
        return

    import monai

    print(
        f"torch {torch.__version__}, monai {monai.__version__}, {THREADS} threads, "
        f"{args.iters} timed iterations after 1 warm-up, batch 1, CPU"
    )
    results: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for name in args.only or list(CASES):
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--iters", str(args.iters)],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"  done {name}: {r['params']:,} params, {r['time_s']:.2f} s, {r['peak_mib']:.0f} MiB",
            flush=True,
        )

    header = (
        f"{'case':<18} {'net':<18} {'params':>12} {'fwd+bwd s':>10} {'peak MiB':>9}"
        f" {'time/MONAI':>11} {'mem/MONAI':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        group = CASES[name]["group"]
        monai_name = name.split("_")[0] + "_monai"
        ref = results.get(monai_name)
        ratio_t = ratio_m = ""
        if ref is not None and name != monai_name:
            ratio_t = f"{r['time_s'] / ref['time_s']:.2f}x"
            ratio_m = f"{r['peak_mib'] / max(ref['peak_mib'], 1e-9):.2f}x"
        label = name.split("_", 1)[1]
        print(
            f"{group:<18} {label:<18} {r['params']:>12,} {r['time_s']:>10.2f} "
            f"{r['peak_mib']:>9.0f} {ratio_t:>11} {ratio_m:>10}"
        )
    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
