"""Speed and memory of sparsediff's networks next to MONAI's equivalents (CPU).

For each pair of networks with the same widths / levels / blocks / latent channels:

- parameter count,
- forward + backward time, wall and process CPU (the CPU time is steadier on a
  shared machine): median of a few rounds after a warm-up, our net and MONAI's
  alternating in one process so both see the same background load,
- peak memory of one forward + backward: the rise of the peak resident set size
  (``ru_maxrss``) over its value after building the net and its input, measured in
  a fresh subprocess per network so that nothing else pollutes it.

Pairs:

- the v2 :class:`~sparsediff.networks.completion.CompletionAutoencoder` (3D, 64³,
  batch 1, one variable, no context: 4 input channels) against the closest
  MONAI build: the encoder (and mean / log-variance convolutions) of
  ``monai.networks.nets.AutoencoderKL`` on the same input channels, and a
  ``monai.networks.nets.DiffusionModelUNet`` at full resolution as the
  decoder over the inputs and the upsampled latent (timestep 0), as ours
  decodes. MONAI has no asymmetric autoencoder, so this composite of its
  parts is the like-for-like comparison; the one difference left is a
  residual block ours adds at the coarsest encoder level. The pass is one
  training step's work: encode, reparameterise, decode, a scalar loss.
- the denoiser U-Net at 2D 128² and 3D 32³ against
  ``monai.networks.nets.DiffusionModelUNet``.

Run (needs ``pip install monai einops``, or the ``benchmark`` extra; several
minutes on 2 free cores, more on a busy machine)::

    python benchmarks/bench_networks.py            # full table
    python benchmarks/bench_networks.py --iters 5 --only unet2d_ours unet2d_monai
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

#: name -> (group, builder key, spatial size option)
CASES: dict[str, dict[str, Any]] = {
    "cae3d_ours": {"group": "CAE 3D", "kind": "cae_ours", "size": "ae_size", "dims": 3},
    "cae3d_ours_ckpt": {
        "group": "CAE 3D",
        "kind": "cae_ours",
        "size": "ae_size",
        "dims": 3,
        "checkpointing": True,
    },
    "cae3d_monai": {"group": "CAE 3D", "kind": "cae_monai", "size": "ae_size", "dims": 3},
    "unet2d_ours": {"group": "UNet 2D", "kind": "unet_ours", "size": "size_2d", "dims": 2},
    "unet2d_monai": {"group": "UNet 2D", "kind": "unet_monai", "size": "size_2d", "dims": 2},
    "unet3d_ours": {"group": "UNet 3D", "kind": "unet_ours", "size": "size_3d", "dims": 3},
    "unet3d_monai": {"group": "UNet 3D", "kind": "unet_monai", "size": "size_3d", "dims": 3},
}

N_VARS = 1
UNET_CHANNELS = 4  # a latent with 4 channels
HEAD_CHANNELS = 64


class MonaiCompletionAE(torch.nn.Module):
    """The closest MONAI build of our completion autoencoder (see the module docstring)."""

    def __init__(self, n_vars: int, n_inputs: int, args: argparse.Namespace, dims: int) -> None:
        super().__init__()
        from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

        enc_w = tuple(args.encoder_widths)
        kl = AutoencoderKL(
            spatial_dims=dims,
            in_channels=2 * n_vars + n_inputs,  # values + mask + inputs, as ours
            out_channels=n_vars,
            num_res_blocks=args.ae_blocks,
            channels=enc_w,
            attention_levels=(False,) * len(enc_w),
            latent_channels=args.latent,
            norm_num_groups=args.groups,
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )
        self.encoder = kl.encoder
        self.quant_mu = kl.quant_conv_mu
        self.quant_logvar = kl.quant_conv_log_sigma
        dec_w = tuple(args.decoder_widths)
        self.decoder = DiffusionModelUNet(
            spatial_dims=dims,
            in_channels=n_inputs + args.latent,
            out_channels=n_vars,
            num_res_blocks=args.ae_blocks,
            channels=dec_w,
            attention_levels=(False,) * len(dec_w),
            norm_num_groups=args.groups,
            # its middle block always has self-attention: at 64^3 the plain
            # attention matrix alone needs 32 GiB, so use the fused kernel
            use_flash_attention=True,
        )
        self.factor = 2 ** (len(enc_w) - 1)

    def forward(
        self, x: torch.Tensor, observed: torch.Tensor, inputs: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode, reparameterise, decode; return the departure and the latent mean."""
        from sparsediff.networks.completion import upsample_latent

        obs = observed.to(x.dtype)
        h = self.encoder(torch.cat([torch.where(observed, x, 0.0), obs, inputs], dim=1))
        mean = self.quant_mu(h)
        logvar = self.quant_logvar(h).clamp(-30.0, 20.0)
        z = mean + torch.exp(0.5 * logvar) * eps
        t = torch.zeros(x.shape[0], dtype=torch.long)
        dec = self.decoder(torch.cat([inputs, upsample_latent(z, self.factor)], dim=1), t)
        return dec, mean


def _build(
    case: dict[str, Any], args: argparse.Namespace
) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    """Return the net and a closure computing a scalar loss of one forward pass."""
    sd = int(case["dims"])
    spatial = (int(getattr(args, case["size"])),) * sd
    ckpt = bool(case.get("checkpointing", False))
    g = torch.Generator().manual_seed(0)
    kind = case["kind"]
    if kind.startswith("cae"):
        from sparsediff.method.inputs import n_inputs

        n_in = n_inputs(N_VARS, 0)
        factor = 2 ** (len(args.encoder_widths) - 1)
        x = torch.randn(1, N_VARS, *spatial, generator=g)
        observed = torch.rand(1, N_VARS, *spatial, generator=g) < 0.7
        inputs = torch.randn(1, n_in, *spatial, generator=g)
        eps = torch.randn(1, args.latent, *(s // factor for s in spatial), generator=g)
        if kind == "cae_ours":
            from sparsediff.networks.completion import CompletionAutoencoder

            ours = CompletionAutoencoder(
                N_VARS,
                n_in,
                spatial_dims=sd,
                encoder_widths=args.encoder_widths,
                decoder_widths=args.decoder_widths,
                latent_channels=args.latent,
                blocks_per_level=args.ae_blocks,
                attention=False,
                checkpointing=ckpt,
            )

            def loss() -> torch.Tensor:
                mean, logvar = ours.encode(x, observed, inputs)
                z = mean + torch.exp(0.5 * logvar) * eps
                return ours.decode(inputs, z).square().mean() + mean.square().mean()

            return ours, loss

        theirs = MonaiCompletionAE(N_VARS, n_in, args, sd)

        def loss() -> torch.Tensor:
            dec, mean = theirs(x, observed, inputs, eps)
            return dec.square().mean() + mean.square().mean()

        return theirs, loss

    x = torch.randn(1, UNET_CHANNELS, *spatial, generator=g)
    attn = tuple(args.unet_attention)
    if kind == "unet_ours":
        from sparsediff.networks.unet import UNet

        net: torch.nn.Module = UNet(
            spatial_dims=sd,
            in_channels=UNET_CHANNELS,
            out_channels=UNET_CHANNELS,
            widths=args.unet_widths,
            blocks_per_level=args.unet_blocks,
            attention_levels=attn,
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
            num_res_blocks=args.unet_blocks,
            channels=tuple(args.unet_widths),
            attention_levels=tuple(i in attn for i in range(len(args.unet_widths))),
            norm_num_groups=args.groups,
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


def _child_memory(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fresh process: parameter count and peak-RSS rise of one forward + backward."""
    torch.manual_seed(0)
    net, loss = _build(CASES[name], args)
    net.train()
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _pass(net, loss)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "name": name,
        "params": sum(p.numel() for p in net.parameters()),
        "peak_mib": (peak_kb - base_kb) / 1024,
    }


def _child_time(names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """One process per group: a warm-up each, then ``iters`` rounds alternating the nets.

    Alternating puts our net and MONAI's under the same background load, so their
    ratio stays meaningful on a shared machine.
    """
    torch.manual_seed(0)
    built = {name: _build(CASES[name], args) for name in names}
    for net, loss in built.values():
        net.train()
        _pass(net, loss)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.iters):
        for name, (net, loss) in built.items():
            w, c = _pass(net, loss)
            wall[name].append(w)
            cpu[name].append(c)
    return {
        name: {"time_s": statistics.median(wall[name]), "cpu_s": statistics.median(cpu[name])}
        for name in names
    }


def label(name: str, args: argparse.Namespace) -> str:
    """``"CAE 3D 64³"``: the group of a case with its size."""
    case = CASES[name]
    return f"{case['group']} {getattr(args, case['size'])}{'²' if case['dims'] == 2 else '³'}"


def _size_args(args: argparse.Namespace) -> list[str]:
    """The size options of this run, to pass on to a child process."""
    out = ["--iters", str(args.iters), "--latent", str(args.latent), "--threads", str(args.threads)]
    out += ["--ae-size", str(args.ae_size), "--size-2d", str(args.size_2d)]
    out += ["--size-3d", str(args.size_3d), "--ae-blocks", str(args.ae_blocks)]
    out += ["--unet-blocks", str(args.unet_blocks), "--groups", str(args.groups)]
    for name in ("encoder_widths", "decoder_widths", "unet_widths", "unet_attention"):
        out += ["--" + name.replace("_", "-"), *map(str, getattr(args, name))]
    return out


def _run_child(args: argparse.Namespace, *extra: str) -> Any:
    out = subprocess.run(
        [sys.executable, __file__, *_size_args(args), *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the memory cases and the timing groups in subprocesses; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2, help="timed rounds per group")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads")
    parser.add_argument("--ae-size", type=int, default=64, help="autoencoder cube size")
    parser.add_argument("--size-2d", type=int, default=128, help="2D U-Net window size")
    parser.add_argument("--size-3d", type=int, default=32, help="3D U-Net cube size")
    parser.add_argument("--encoder-widths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--decoder-widths", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--latent", type=int, default=4, help="latent channels")
    parser.add_argument("--ae-blocks", type=int, default=1, help="autoencoder blocks per level")
    parser.add_argument("--unet-widths", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--unet-blocks", type=int, default=2)
    parser.add_argument("--unet-attention", type=int, nargs="*", default=[2])
    parser.add_argument(
        "--groups", type=int, default=32, help="MONAI norm groups (widths must divide by it)"
    )
    parser.add_argument("--only", nargs="*", default=None, help="case names to run")
    parser.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-time", nargs="*", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = [n for n in args.only or [] if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(_child_memory(args.child_memory, args)))
        return
    if args.child_time:
        print(json.dumps(_child_time(args.child_time, args)))
        return

    import monai

    names = args.only or list(CASES)
    print(
        f"torch {torch.__version__}, monai {monai.__version__}, {args.threads} threads, batch 1, "
        "CPU; "
        f"time = median of {args.iters} alternating rounds after 1 warm-up; "
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    t_all = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = _run_child(args, "--child-memory", name)
        r = results[name]
        r["label"] = label(name, args)
        print(f"  memory {name}: {r['params']:,} params, {r['peak_mib']:.0f} MiB", flush=True)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(CASES[name]["group"], []).append(name)
    for group, members in groups.items():
        times = _run_child(args, "--child-time", *members)
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
            f"{r['label']:<14} {name.split('_', 1)[1]:<10} {r['params']:>12,} "
            f"{r['time_s']:>7.2f} {r['cpu_s']:>7.2f} {r['peak_mib']:>9.0f} "
            f"{ratios[0]:>11} {ratios[1]:>10} {ratios[2]:>10}"
        )
    print(
        f"\ntotal wall time {time.perf_counter() - t_all:.0f} s; "
        f"load average at end {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
