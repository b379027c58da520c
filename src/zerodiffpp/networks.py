"""ZeroDiff networks (METHOD.md 2.2-2.4) and a small factory that builds them from dimensions.

All are two-layer MLPs.  Linear weights are initialised N(0, 0.02) with zero biases (METHOD.md 2,
``weights_init``), drawn from an explicit ``torch.Generator`` so that construction is reproducible
without touching the global RNG.  LeakyReLU slope 0.2 everywhere.

Dimensions (:class:`NetworkDims`): x_dim visual feature, c_dim SC representation, attr_dim class
embedding d, z_dim noise/latent (= d as in every official script), t_dim sinusoidal step-embedding
width (= d), hidden = h_G = h_D = ngh.  Each network that uses the step t owns a step MLP
t_dim -> d; each that takes c owns a "con_emb" MLP c_dim -> d.  (The official critics size their
first layer with dim_t although the step MLP outputs d -- METHOD.md 2.2 / 8 item 9 -- here the
widths are simply consistent.)

Critics are split into ``condition(...)`` (the first layer's contribution of everything except the
judged input, computed once per step) and ``score(u, cond_h)`` (evaluated on real, fake and
interpolated inputs); ``forward`` = ``score(u, condition(...))``.

Layers on a concatenation of a wide constant block and narrow learned embeddings (the generators'
first layers, the transition critics' conditioning) go through :func:`concat_linear`, whose
backward skips the input gradient of blocks that need none (same values; :func:`plain_autograd`
switches back to ``linear(torch.cat(...))`` for the trainers' reference path).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .diffusion import timestep_embedding

LRELU_SLOPE = 0.2
INIT_STD = 0.02


@dataclass(frozen=True)
class NetworkDims:
    x_dim: int
    c_dim: int
    attr_dim: int
    hidden: int
    z_dim: int = 0      # 0 -> attr_dim (noiseSize = attSize in all official scripts)
    t_dim: int = 0      # 0 -> attr_dim (dim_t = attSize, METHOD.md 4.2)

    def __post_init__(self):
        if self.z_dim == 0:
            object.__setattr__(self, "z_dim", self.attr_dim)
        if self.t_dim == 0:
            object.__setattr__(self, "t_dim", self.attr_dim)

    def to_meta(self) -> dict:
        return {k: int(v) for k, v in asdict(self).items()}

    @classmethod
    def from_meta(cls, meta: dict) -> "NetworkDims":
        return cls(**{k: int(meta[k]) for k in ("x_dim", "c_dim", "attr_dim", "hidden", "z_dim", "t_dim")})


def init_weights(module: nn.Module, generator: torch.Generator | None) -> nn.Module:
    """N(0, 0.02) weights, zero biases for every Linear (METHOD.md 2)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, INIT_STD, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return module


class _ConcatLinear(torch.autograd.Function):
    """y = cat(blocks, 1) W^T + b whose backward forms input gradients only for the blocks that
    need one, each from its own column block of W.  The generators and transition critics
    concatenate a wide constant block (x_{t+1}, c_t, ...) with narrow learned embeddings; plain
    autograd would compute the full (B x in) input gradient -- a (B x out) @ (out x in) product as
    large as the forward -- just to read the few embedding columns.  Same math, same result."""

    @staticmethod
    def forward(ctx, weight, bias, *blocks):
        u = torch.cat(blocks, dim=1)
        ctx.save_for_backward(u, weight)
        ctx.widths = [b.shape[1] for b in blocks]
        ctx.has_bias = bias is not None
        return F.linear(u, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        u, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_w = torch.mm(grad_out.t(), u) if need[0] else None
        grad_b = grad_out.sum(0) if ctx.has_bias and need[1] else None
        grads, off = [], 0
        for i, width in enumerate(ctx.widths):
            grads.append(torch.mm(grad_out, weight[:, off:off + width]) if need[2 + i] else None)
            off += width
        return (grad_w, grad_b, *grads)


_PLAIN_AUTOGRAD = [False]


@contextlib.contextmanager
def plain_autograd(enabled: bool = True):
    """Within this context :func:`concat_linear` is the plain ``linear(torch.cat(blocks))`` (the
    straightforward reference the trainers' ``fused=False`` path runs with)."""
    before = _PLAIN_AUTOGRAD[0]
    _PLAIN_AUTOGRAD[0] = bool(enabled)
    try:
        yield
    finally:
        _PLAIN_AUTOGRAD[0] = before


def concat_linear(linear: nn.Linear, blocks) -> torch.Tensor:
    """``linear(torch.cat(blocks, dim=1))`` for 2-d blocks, without the unneeded input-gradient
    work of constant blocks (see _ConcatLinear).  Plain path without autograd, under autocast and
    inside :func:`plain_autograd`."""
    if (_PLAIN_AUTOGRAD[0] or not torch.is_grad_enabled()
            or torch.is_autocast_enabled(blocks[0].device.type) or any(b.dim() != 2 for b in blocks)):
        return linear(torch.cat(blocks, dim=1))
    return _ConcatLinear.apply(linear.weight, linear.bias, *blocks)


class TimeEmbedFC(nn.Module):
    """Linear(in -> out) -> SiLU -> Linear(out -> out)  (METHOD.md 2.2)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, u):
        return self.fc2(F.silu(self.fc1(u)))


class StepEmbedding(nn.Module):
    """Integer step t -> sinusoidal (t_dim) -> TimeEmbedFC -> d."""

    def __init__(self, t_dim: int, out_dim: int):
        super().__init__()
        self.t_dim = t_dim
        self.mlp = TimeEmbedFC(t_dim, out_dim)

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.t_dim))


class MLPHead(nn.Module):
    """Linear -> LReLU(0.2) -> Linear, optionally followed by a Sigmoid."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, sigmoid: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.sigmoid = sigmoid

    def forward(self, u):
        return self._head(self.fc1(u))

    def forward_blocks(self, blocks):
        """``forward(torch.cat(blocks, dim=1))`` (first layer via :func:`concat_linear`)."""
        return self._head(concat_linear(self.fc1, blocks))

    def _head(self, h):
        out = self.fc2(F.leaky_relu(h, LRELU_SLOPE))
        return torch.sigmoid(out) if self.sigmoid else out


# --------------------------------------------------------------------------- generators


class DRGGenerator(nn.Module):
    """R (METHOD.md 2.3): [z, a, c_in, step-emb(t)] -> hidden -> c_dim, Sigmoid; predicts c-hat_0.
    (The official unused con_emb MLP is not built.)"""

    def __init__(self, dims: NetworkDims):
        super().__init__()
        self.step_emb = StepEmbedding(dims.t_dim, dims.attr_dim)
        self.net = MLPHead(dims.z_dim + dims.attr_dim + dims.c_dim + dims.attr_dim, dims.hidden,
                           dims.c_dim, sigmoid=True)

    def forward(self, z, a, c_in, t):
        return self.net.forward_blocks([z, a, c_in, self.step_emb(t)])


class DFGEncoder(nn.Module):
    """E (METHOD.md 2.4, VAE, embed_type VA): [x, a] -> hidden -> LReLU -> 2 z_dim -> LReLU ->
    (mu, log sigma^2) heads."""

    def __init__(self, dims: NetworkDims):
        super().__init__()
        self.fc1 = nn.Linear(dims.x_dim + dims.attr_dim, dims.hidden)
        self.fc2 = nn.Linear(dims.hidden, 2 * dims.z_dim)
        self.mu = nn.Linear(2 * dims.z_dim, dims.z_dim)
        self.log_var = nn.Linear(2 * dims.z_dim, dims.z_dim)

    def forward(self, x, a):
        h = F.leaky_relu(self.fc1(torch.cat([x, a], dim=1)), LRELU_SLOPE)
        h = F.leaky_relu(self.fc2(h), LRELU_SLOPE)
        return self.mu(h), self.log_var(h)


def reparameterize(mu, log_var, generator: torch.Generator):
    """z = mu + sigma * eps with eps from ``generator``."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * log_var) * eps


class DFGGenerator(nn.Module):
    """G (METHOD.md 2.4): [z, a, con_emb(c), x_{t+1}, step-emb(t)] -> hidden -> x_dim, Sigmoid;
    predicts x-hat_0.  Input width z_dim + 3 d + x_dim."""

    def __init__(self, dims: NetworkDims):
        super().__init__()
        self.con_emb = TimeEmbedFC(dims.c_dim, dims.attr_dim)
        self.step_emb = StepEmbedding(dims.t_dim, dims.attr_dim)
        self.net = MLPHead(dims.z_dim + 3 * dims.attr_dim + dims.x_dim, dims.hidden, dims.x_dim,
                           sigmoid=True)

    def forward(self, z, a, c, x_tp1, t):
        return self.net.forward_blocks([z, a, self.con_emb(c), x_tp1, self.step_emb(t)])


# --------------------------------------------------------------------------- critics


class _Critic(nn.Module):
    """Linear -> LReLU -> Linear(1) on [u, cond]; no normalisation, no sigmoid.

    The first Linear on the concatenation is stored as two blocks, ``fc_u`` (no bias) for the
    judged input u and ``fc_cond`` (with the bias) for the conditioning, so that the conditioning
    half -- identical for real, fake and interpolated u -- is computed once per step:
    ``condition(...)`` returns fc_cond(cond) and ``score(u, cond_h)`` the critic value.
    Mathematically this is exactly the official Linear(u_dim + cond_dim -> hidden)."""

    def __init__(self, u_dim: int, cond_dim: int, hidden: int):
        super().__init__()
        self.fc_u = nn.Linear(u_dim, hidden, bias=False)
        self.fc_cond = nn.Linear(cond_dim, hidden)
        self.fc_out = nn.Linear(hidden, 1)

    def score(self, u, cond_h):
        """u: (..., B, u_dim) (leading dims broadcast against cond_h (B, hidden)) -> (..., B, 1)."""
        return self.fc_out(F.leaky_relu(self.fc_u(u) + cond_h, LRELU_SLOPE))


class CriticX0(_Critic):
    """D_x0 / D_r0 (METHOD.md 2.3, 2.4): semantic-conditioned critic of [u, a]."""

    def __init__(self, u_dim: int, attr_dim: int, hidden: int):
        super().__init__(u_dim, attr_dim, hidden)

    def condition(self, a):
        return self.fc_cond(a)

    def forward(self, u, a):
        return self.score(u, self.condition(a))


class CriticXC(_Critic):
    """D_xc (METHOD.md 2.4): representation-conditioned critic of [x, con_emb(c)]."""

    def __init__(self, dims: NetworkDims):
        super().__init__(dims.x_dim, dims.attr_dim, dims.hidden)
        self.con_emb = TimeEmbedFC(dims.c_dim, dims.attr_dim)

    def condition(self, c):
        return self.fc_cond(self.con_emb(c))

    def forward(self, x, c):
        return self.score(x, self.condition(c))


class CriticXT(_Critic):
    """D_xt (METHOD.md 2.4): judges a denoising transition; [x_t, x_{t+1}, a, con_emb(c), step(t)]."""

    def __init__(self, dims: NetworkDims):
        super().__init__(dims.x_dim, dims.x_dim + 3 * dims.attr_dim, dims.hidden)
        self.con_emb = TimeEmbedFC(dims.c_dim, dims.attr_dim)
        self.step_emb = StepEmbedding(dims.t_dim, dims.attr_dim)

    def condition(self, x_tp1, a, c, t):
        return concat_linear(self.fc_cond, [x_tp1, a, self.con_emb(c), self.step_emb(t)])

    def forward(self, x_t, x_tp1, a, c, t):
        return self.score(x_t, self.condition(x_tp1, a, c, t))


class CriticRT(_Critic):
    """D_rt (METHOD.md 2.3): DRG transition critic of [c_t, c_{t+1}, a, step(t)]."""

    def __init__(self, dims: NetworkDims):
        super().__init__(dims.c_dim, dims.c_dim + 2 * dims.attr_dim, dims.hidden)
        self.step_emb = StepEmbedding(dims.t_dim, dims.attr_dim)

    def condition(self, c_tp1, a, t):
        return concat_linear(self.fc_cond, [c_tp1, a, self.step_emb(t)])

    def forward(self, c_t, c_tp1, a, t):
        return self.score(c_t, self.condition(c_tp1, a, t))


# --------------------------------------------------------------------------- decoder


class SemanticDecoder(nn.Module):
    """Dec / Dec_r (METHOD.md 2.3, 2.4, ``V2S_mapping``): u -> hidden -> LReLU -> d, L2-normalised
    output when the class embeddings are.  ``forward_with_hidden`` also returns the LReLU hidden
    activation (the "S" input of the final classifier, METHOD.md 4.3)."""

    def __init__(self, in_dim: int, attr_dim: int, hidden: int, normalize: bool):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, attr_dim)
        self.normalize = bool(normalize)

    def forward_with_hidden(self, u):
        hidden = F.leaky_relu(self.fc1(u), LRELU_SLOPE)
        out = self.fc2(hidden)
        if self.normalize:
            out = F.normalize(out, p=2, dim=1)
        return out, hidden

    def forward(self, u):
        return self.forward_with_hidden(u)[0]


# --------------------------------------------------------------------------- factory

NETWORKS = {
    # DRG (stage 1)
    "R": lambda d, norm: DRGGenerator(d),
    "D_r0": lambda d, norm: CriticX0(d.c_dim, d.attr_dim, d.hidden),
    "D_rt": lambda d, norm: CriticRT(d),
    "Dec_r": lambda d, norm: SemanticDecoder(d.c_dim, d.attr_dim, d.hidden, norm),
    # DFG (stage 2)
    "E": lambda d, norm: DFGEncoder(d),
    "G": lambda d, norm: DFGGenerator(d),
    "D_x0": lambda d, norm: CriticX0(d.x_dim, d.attr_dim, d.hidden),
    "D_xt": lambda d, norm: CriticXT(d),
    "D_xc": lambda d, norm: CriticXC(d),
    "Dec": lambda d, norm: SemanticDecoder(d.x_dim, d.attr_dim, d.hidden, norm),
}
DRG_NETWORKS = ("R", "D_r0", "D_rt", "Dec_r")
DFG_NETWORKS = ("E", "G", "D_x0", "D_xt", "D_xc", "Dec")


def build_networks(names, dims: NetworkDims, normalize_dec: bool, device=None,
                   generator: torch.Generator | None = None) -> dict[str, nn.Module]:
    """Build the named networks (in the given order, so init draws are reproducible)."""
    nets = {}
    for name in names:
        net = init_weights(NETWORKS[name](dims, normalize_dec), generator)
        nets[name] = net.to(device) if device is not None else net
    return nets


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
