"""Final softmax classifier (METHOD.md 4.3) with a fixed schedule (METHOD.md 4.5 clean protocol).

Model: one Linear + log-softmax, NLL, weights N(0, 0.02), bias 0, Adam(lr, (0.5, 0.999)),
``epochs`` passes over the data reshuffled each epoch by a seeded ``torch.Generator``.
The model after the **last** epoch is returned: no test set is looked at.

Deviation from the official code (METHOD.md 8 item 3): the batch size is
``eval.classifier_batch``, not ``syn_num``, so the number of optimiser steps does not change
with the number of synthetic features per class.

Inputs are one tensor or a sequence of feature *blocks* (same rows, read as their column-wise
concatenation), so the V / S / C blocks of METHOD.md 4.3 are computed once and shared by every
input variant.  No DataLoader: index tensors only.

Speed (issue "Performance"): the model is linear, so the training step is written out instead
of going through autograd: each step gathers its rows from every block straight into one
reused contiguous (batch x width) buffer (no concatenated copy of the training set, no
per-block products with column slices of W) and does two matrix products,
``logits = X_b W^T + b`` and ``dW = G^T X_b`` with ``G = w ⊙ (softmax - onehot) / B`` (the exact
gradient of the mean weighted NLL), then a fused ``torch.optim.Adam`` step.  Same arithmetic as
the autograd version up to float rounding (``tests/test_classifier.py`` checks the weights
against a plain autograd loop); 1.29x faster than the previous per-block autograd loop at
AWA2 VCS width (benchmarks/README.md).

``monitor`` (optional) is called with the model after every epoch; the evaluation module
uses it for the *leaky* paper-compatible best-of-test diagnostic (METHOD.md 4.5), which is
never used for headline numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .io import DataError

Blocks = Union[torch.Tensor, Sequence[torch.Tensor]]
PREDICT_CHUNK = 8192


class SoftmaxClassifier(nn.Module):
    """Linear(in_dim -> n_classes) + LogSoftmax (``LINEAR_LOGSOFTMAX_CLASSIFIER``)."""

    def __init__(self, in_dim: int, n_classes: int, generator: Optional[torch.Generator] = None):
        super().__init__()
        self.fc = nn.Linear(in_dim, n_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.02, generator=generator)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Blocks) -> torch.Tensor:
        """Log-probabilities for one tensor or a list of column blocks (no concatenation copy:
        each block meets its own column slice of the weight)."""
        if isinstance(x, torch.Tensor):
            return F.log_softmax(self.fc(x), dim=1)
        logits, off = self.fc.bias, 0
        for b in x:
            logits = logits + F.linear(b, self.fc.weight[:, off:off + b.shape[1]])
            off += b.shape[1]
        if off != self.fc.in_features:
            raise DataError(f"classifier input width {off} != {self.fc.in_features}")
        return F.log_softmax(logits, dim=1)


@dataclass
class TrainResult:
    model: SoftmaxClassifier        # last-epoch model (headline)
    losses: list[float] = field(default_factory=list)     # mean training loss per epoch
    monitor: list = field(default_factory=list)           # monitor(model) per epoch, if given


def as_blocks(x: Blocks) -> list[torch.Tensor]:
    blocks = [x] if isinstance(x, torch.Tensor) else list(x)
    if not blocks:
        raise DataError("classifier input: no feature blocks")
    n = blocks[0].shape[0]
    for b in blocks:
        if b.ndim != 2 or b.shape[0] != n:
            raise DataError(f"classifier input: blocks must be 2-d with {n} rows, got {tuple(b.shape)}")
        if b.dtype != blocks[0].dtype or b.device != blocks[0].device:
            raise DataError(f"classifier input: blocks must share one dtype and device, got "
                            f"{b.dtype} on {b.device} and {blocks[0].dtype} on {blocks[0].device}")
    return blocks


def _rows(blocks: list[torch.Tensor], start: int, stop: int):
    parts = [b[start:stop] for b in blocks]
    return parts[0] if len(parts) == 1 else parts


class _RowGather:
    """``gather(idx)`` -> the rows ``idx`` of the column-wise concatenation of ``blocks``, written
    into one preallocated contiguous buffer (valid until the next call)."""

    def __init__(self, blocks: list[torch.Tensor], max_rows: int):
        self.blocks = blocks
        width = sum(b.shape[1] for b in blocks)
        self.buffer = torch.empty(max_rows, width, dtype=blocks[0].dtype, device=blocks[0].device)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if len(self.blocks) == 1:
            return self.blocks[0].index_select(0, idx)
        out, off = self.buffer[:len(idx)], 0
        for b in self.blocks:
            torch.index_select(b, 0, idx, out=out[:, off:off + b.shape[1]])
            off += b.shape[1]
        return out


@torch.no_grad()
def _step(xb: torch.Tensor, yb: torch.Tensor, wb: Optional[torch.Tensor], weight: torch.Tensor,
          bias: torch.Tensor) -> torch.Tensor:
    """Write the gradient of the batch loss ``sum_i w_i nll_i / B`` (w = 1 when ``wb`` is None)
    into ``weight.grad`` / ``bias.grad``; return the summed weighted NLL of the batch."""
    logp = F.log_softmax(torch.addmm(bias, xb, weight.t()), dim=1)
    rows = torch.arange(len(yb), device=yb.device)
    nll = -logp[rows, yb]
    grad = logp.exp_()                     # softmax, reusing the buffer
    grad[rows, yb] -= 1.0                  # d nll_i / d logits_i = softmax_i - onehot_i
    if wb is None:
        grad.div_(len(yb))
        loss_sum = nll.sum()
    else:
        grad.mul_((wb / len(yb)).unsqueeze(1))
        loss_sum = (nll * wb).sum()
    torch.mm(grad.t(), xb, out=weight.grad)
    torch.sum(grad, dim=0, out=bias.grad)
    return loss_sum


def _autograd_step(xb, yb, wb, weight, bias) -> torch.Tensor:
    """The straightforward version of :func:`_step` (``train_classifier(..., autograd=True)``),
    kept as the reference for tests and benchmarks/bench_train.py."""
    weight.grad.zero_()
    bias.grad.zero_()
    with torch.enable_grad():
        nll = F.nll_loss(F.log_softmax(F.linear(xb, weight, bias), dim=1), yb, reduction="none")
        loss_sum = nll.sum() if wb is None else (nll * wb).sum()
        (loss_sum / len(yb)).backward()
    return loss_sum.detach()


def train_classifier(x: Blocks, y: torch.Tensor, n_classes: int, *, epochs: int, lr: float,
                     batch_size: int, generator: torch.Generator,
                     weights: Optional[torch.Tensor] = None,
                     monitor: Optional[Callable[[SoftmaxClassifier], object]] = None,
                     progress=None, autograd: bool = False) -> TrainResult:
    """Train a softmax classifier on compact labels ``y`` in 0..n_classes-1.

    ``weights`` (n,) gives a per-sample weighted NLL, ``sum_i w_i * nll_i / batch`` (all ones
    equals the plain NLL; used by DiffGen, METHOD.md 6.4).  ``generator`` must be a CPU
    generator; it draws the initial weights and every epoch's permutation.  ``progress`` is
    an optional callable wrapping the epoch range (e.g. a tqdm factory).  ``autograd=True``
    takes the straightforward autograd step instead of the hand-written gradient (reference)."""
    blocks = as_blocks(x)
    device = blocks[0].device
    n = blocks[0].shape[0]
    y = torch.as_tensor(y, dtype=torch.long).to(device)
    if y.shape != (n,):
        raise DataError(f"classifier labels: expected shape ({n},), got {tuple(y.shape)}")
    if n == 0:
        raise DataError("classifier: empty training set")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise DataError(f"classifier labels must lie in 0..{n_classes - 1}")
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=blocks[0].dtype).to(device)
        if weights.shape != (n,) or bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
            raise DataError(f"classifier weights: expected ({n},) finite non-negative values")
    if generator.device.type != "cpu":
        raise DataError("classifier: the shuffling generator must be a CPU torch.Generator")

    in_dim = sum(b.shape[1] for b in blocks)
    model = SoftmaxClassifier(in_dim, n_classes, generator).to(device)
    # fused kernel: one pass over W per step instead of ~10 (7x faster here at AWA2 widths)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999),
                           fused=(device.type in ("cpu", "cuda")) or None)
    result = TrainResult(model)
    batch_rows = _RowGather(blocks, min(batch_size, n))
    weight, bias = model.fc.weight, model.fc.bias
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    step = _autograd_step if autograd else _step
    epoch_iter = range(epochs) if progress is None else progress(range(epochs))
    for _ in epoch_iter:
        model.train()
        perm = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            total += step(batch_rows(idx), y[idx],
                          None if weights is None else weights[idx], weight, bias)
            opt.step()
        result.losses.append(float(total) / n)
        if monitor is not None:
            result.monitor.append(monitor(model))
    model.eval()
    return result


@torch.no_grad()
def log_probs(model: SoftmaxClassifier, x: Blocks, chunk: int = PREDICT_CHUNK) -> torch.Tensor:
    """Log-probabilities (n, n_classes), computed in chunks."""
    blocks = as_blocks(x)
    was_training = model.training
    model.eval()
    n = blocks[0].shape[0]
    out = [model(_rows(blocks, s, s + chunk)) for s in range(0, n, chunk)]
    model.train(was_training)
    if not out:
        return torch.empty(0, model.fc.out_features, device=blocks[0].device)
    return torch.cat(out)


@torch.no_grad()
def predict(model: SoftmaxClassifier, x: Blocks, chunk: int = PREDICT_CHUNK) -> torch.Tensor:
    """Compact predicted labels (n,) (argmax of the log-probabilities)."""
    return log_probs(model, x, chunk).argmax(dim=1)
