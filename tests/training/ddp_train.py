"""Run by tests under ``torchrun``: train, then each rank saves the weights it ended with."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from sparsediff.training.trainer import train

if __name__ == "__main__":
    config, out = sys.argv[1], Path(sys.argv[2])
    model = train(None, config, out=out)
    rank = int(os.environ.get("RANK", "0"))
    tensors = {}
    for name, net in (("autoencoder", model.autoencoder), ("prior", model.prior)):
        if net is not None:
            tensors.update({f"{name}.{k}": v.contiguous() for k, v in net.state_dict().items()})
    save_file(tensors, str(out / f"rank{rank}.safetensors"))
