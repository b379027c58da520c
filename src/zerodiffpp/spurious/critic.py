"""ZeroDiff's own delta_adv (METHOD.md 5; ZeroDiff Fig. 2), kept beside the two metrics for the
ZeroDiff variants: the trained DFG critic D_x0 on *real* features only,

    delta_adv = mean_y E_{x in train_y} D_x0(x, a_y) - mean_y E_{x in test-seen_y} D_x0(x, a_y)

(macro over the seen classes with test-seen samples).  It is a property of the trained critic,
not of generated features, so every ZeroDiff variant scored from the same DFG checkpoint gets
the same value (DiffTTA / DiffGen leave the critics frozen, METHOD.md 6.3).  WGAN critics have
no fixed scale, so delta_adv compares runs of ZeroDiff with each other, not with other methods.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .companions import macro_mean

BATCH = 4096


@torch.no_grad()
def critic_scores(critic: torch.nn.Module, x: np.ndarray, y: np.ndarray, class_emb: np.ndarray,
                  batch_size: int = BATCH) -> np.ndarray:
    """D(x_i, a_{y_i}) for every row, float64."""
    device = next(critic.parameters()).device
    emb = torch.as_tensor(class_emb, dtype=torch.float32, device=device)
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=device)
        yb = torch.as_tensor(np.asarray(y[i:i + batch_size], dtype=np.int64), device=device)
        out.append(critic(xb, emb[yb]).squeeze(-1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def delta_adv(critic: torch.nn.Module, train_x, train_y, test_x, test_y, class_emb,
              classes) -> float:
    """METHOD.md 5 with the macro means of METHOD.md 6.2 (see the module docstring)."""
    def mean_d(x, y):
        mask = np.isin(y, classes)
        return macro_mean(critic_scores(critic, x[mask], y[mask], class_emb), y[mask], classes)

    return mean_d(train_x, train_y) - mean_d(test_x, test_y)


def load_d_x0(dfg_dir: str | Path, device) -> torch.nn.Module:
    """The trained D_x0 of a DFG checkpoint (``<dfg_dir>/model.pt``), frozen, in eval mode;
    a DataError names the file when it is not a loadable DFG checkpoint."""
    # The DFG checkpoint reader of the evaluate stage (stage check + network rebuild); only
    # D_x0 is restored, so no DRG checkpoint is needed.
    from ..synthesis import CHECKPOINT_NAME, _load, _restore

    ckpt = _load(dfg_dir, "DFG")
    return _restore(ckpt, ("D_x0",), torch.device(device), Path(dfg_dir) / CHECKPOINT_NAME)["D_x0"]
