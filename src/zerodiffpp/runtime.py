"""Device, threads, seeding and progress bars, configured from the ``runtime`` section."""
from __future__ import annotations

import os
import random
import sys

import numpy as np

from .config import ConfigError, RuntimeConfig


class Interrupted(KeyboardInterrupt):
    """Work stopped by SIGINT/SIGTERM after saving what can be resumed; the message says what
    was kept and how to continue.  ``stages.common.run_stage`` prints it and exits with 130."""


def setup(cfg: RuntimeConfig, seed: int):
    """Apply threads + determinism settings, seed every RNG, return the torch device."""
    import torch

    torch.set_num_threads(cfg.threads)
    # Same params + seed on CPU -> same metrics: forbid nondeterministic kernels.
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(seed)
    return select_device(cfg.device)


def select_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device=cuda: no CUDA device is available on this machine "
                          "(allowed: auto, cpu, cuda; use auto or cpu here)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def autocast(cfg: RuntimeConfig, device):
    """bf16 autocast context when ``runtime.precision=bf16``, else a no-op."""
    import contextlib

    import torch

    if cfg.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def progress(iterable=None, *, total=None, desc: str = "", enabled: bool = True, **kw):
    """tqdm progress bar on stderr; silent when disabled or stderr is not a terminal in CI."""
    from tqdm.auto import tqdm

    disable = not enabled or os.environ.get("ZERODIFFPP_NO_PROGRESS") == "1"
    return tqdm(iterable, total=total, desc=desc, disable=disable, file=sys.stderr,
                dynamic_ncols=True, mininterval=1.0, **kw)
