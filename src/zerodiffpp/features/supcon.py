"""Supervised contrastive loss (Khosla et al., NeurIPS 2020, "L_out" form), METHOD.md 1.4.

For anchors i = 1..N with L2-normalised projections z_i and labels y_i,

    L = mean_{i : |P(i)| > 0}  -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t)
                                                            / sum_{a != i} exp(z_i.z_a / t) )

where P(i) = {p != i : y_p = y_i}.  With two augmented views per image, the caller stacks
both views (2B rows) and repeats the labels, so each view's twin is one of its positives.
Anchors without any positive are left out of the mean (they carry no supervised signal).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_contrastive_loss(projections: torch.Tensor, labels: torch.Tensor,
                                temperature: float = 0.1) -> torch.Tensor:
    """Scalar SupCon loss of ``projections`` (N, P) with integer ``labels`` (N,).

    ``projections`` are L2-normalised here (a no-op if they already are).  Returns 0 (with a
    gradient path) when no anchor has a positive.
    """
    if projections.ndim != 2:
        raise ValueError(f"projections must be (N, P), got shape {tuple(projections.shape)}")
    if labels.shape != (projections.shape[0],):
        raise ValueError(f"labels must have shape ({projections.shape[0]},), "
                         f"got {tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = F.normalize(projections.float(), dim=1)
    n = z.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    # log of the softmax over all other samples (the anchor itself is excluded).
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    has_pos = n_pos > 0
    if not bool(has_pos.any()):
        return projections.sum() * 0.0
    # masked_fill avoids 0 * (-inf) on the diagonal.
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    per_anchor = -pos_log_prob[has_pos] / n_pos[has_pos]
    return per_anchor.mean()
