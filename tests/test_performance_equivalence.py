"""The fast training path computes the same thing as the straightforward one.

* ``losses.critic_pass_fused`` vs ``trainloop.critic_pass`` (autograd double backward): same
  scores, penalty and gradients for every critic parameter and the conditioning;
* ``networks.concat_linear`` vs ``linear(torch.cat(...))``: same outputs and gradients for any
  pattern of blocks that need a gradient;
* DRG / DFG trainers with ``fused=True`` vs ``fused=False`` (and DFG ablations): same losses for
  the first iterations, same weights after them (rtol 1e-4), identical RNG state;
* the fused path does no more matmul FLOPs than the reference and does not synchronise with the
  host inside an iteration (no .item() / bool() / float() on tensors).
"""
import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from zerodiffpp.config import DFGConfig, DiffusionConfig, DRGConfig
from zerodiffpp.losses import critic_pass_fused
from zerodiffpp.networks import (LRELU_SLOPE, CriticRT, CriticX0, CriticXC, CriticXT, NetworkDims,
                                 concat_linear, init_weights, plain_autograd)
from zerodiffpp.train_dfg import DFGTrainer
from zerodiffpp.train_drg import DRGTrainer
from zerodiffpp.trainloop import critic_pass, random_prepared_data

DIMS = NetworkDims(x_dim=24, c_dim=20, attr_dim=6, hidden=32)
DIFF = DiffusionConfig()
SMALL = dict(batch_size=16, critic_steps=3, hidden_dim=32)


@pytest.fixture(scope="module")
def data():
    return random_prepared_data(n_train=96, x_dim=24, c_dim=20, attr_dim=6, seed=0)


# --------------------------------------------------------------------------- critic pass


def _critic_case(kind, scale):
    g = torch.Generator().manual_seed(0)
    critic = {"x0": lambda: CriticX0(DIMS.x_dim, DIMS.attr_dim, DIMS.hidden),
              "xc": lambda: CriticXC(DIMS), "xt": lambda: CriticXT(DIMS), "rt": lambda: CriticRT(DIMS)}[kind]()
    init_weights(critic, torch.Generator().manual_seed(1))
    with torch.no_grad():                  # larger weights: a penalty far from 0, mixed lrelu signs
        for p in critic.parameters():
            p.mul_(scale)
    b = 9
    u_dim = DIMS.c_dim if kind == "rt" else DIMS.x_dim
    real, fake = torch.rand(b, u_dim, generator=g), torch.rand(b, u_dim, generator=g)
    a, c = torch.rand(b, DIMS.attr_dim, generator=g), torch.rand(b, DIMS.c_dim, generator=g)
    t = torch.randint(0, 4, (b,), generator=g)
    cond = {"x0": lambda: (a,), "xc": lambda: (c,), "xt": lambda: (torch.rand(b, DIMS.x_dim, generator=g), a, c, t),
            "rt": lambda: (torch.rand(b, DIMS.c_dim, generator=g), a, t)}[kind]()
    weights = torch.rand(3, b, generator=g)
    return critic, real, fake, cond, weights


@pytest.mark.parametrize("kind", ["x0", "xc", "xt", "rt"])
@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_fused_critic_pass_matches_autograd(kind, scale):
    results = []
    for fused in (False, True):
        critic, real, fake, cond, w = _critic_case(kind, scale)
        gen = torch.Generator().manual_seed(7)
        with plain_autograd(not fused):
            cond_h = critic.condition(*cond)
            if fused:
                d_real, d_fake, gp = critic_pass_fused(critic, cond_h, real, fake, gen, LRELU_SLOPE)
            else:
                d_real, d_fake, gp = critic_pass(critic, cond_h, real, fake, gen)
            # per-sample weights on the scores (like the mutual-learning loss) + a weighted penalty
            loss = (w[0] * d_real).sum() - (w[1] * d_fake).sum() + (d_real - d_fake).pow(2).mean() + 3.0 * gp
            loss.backward()
        grads = {n: p.grad.clone() for n, p in critic.named_parameters() if p.grad is not None}
        results.append((d_real.detach(), d_fake.detach(), gp.detach(), grads, gen.get_state()))
    (r0, f0, gp0, g0, s0), (r1, f1, gp1, g1, s1) = results
    assert torch.allclose(r0, r1, rtol=1e-5, atol=1e-6) and torch.allclose(f0, f1, rtol=1e-5, atol=1e-6)
    assert torch.allclose(gp0, gp1, rtol=1e-5, atol=1e-6)
    assert scale == 1.0 or gp0.item() > 1.0           # the penalty is really exercised
    assert torch.equal(s0, s1)                        # same RNG draws (the interpolation alphas)
    assert g0.keys() <= g1.keys()                     # fused also returns an (equal) zero grad where
    for name, grad in g1.items():                     # autograd returned None
        ref = g0.get(name, torch.zeros_like(grad))
        assert torch.allclose(ref, grad, rtol=1e-4, atol=1e-5), name


def test_fused_critic_pass_inputs_are_constants():
    critic, real, fake, cond, _ = _critic_case("x0", 1.0)
    fake.requires_grad_(True)
    d_real, d_fake, gp = critic_pass_fused(critic, critic.condition(*cond), real, fake,
                                           torch.Generator().manual_seed(0))
    (d_real.sum() + d_fake.sum() + gp).backward()
    assert fake.grad is None and critic.fc_u.weight.grad is not None


# --------------------------------------------------------------------------- concat_linear


@pytest.mark.parametrize("needs", [(False, True, False, True), (True, False, False, False),
                                   (True, True, True, True), (False, False, False, False)])
def test_concat_linear_matches_cat_linear(needs):
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(3 + 5 + 7 + 2, 11)
    init_weights(lin, torch.Generator().manual_seed(1))
    with torch.no_grad():
        lin.bias.normal_(generator=g)
    blocks = [torch.randn(4, w, generator=g) for w in (3, 5, 7, 2)]
    grad_out = torch.randn(4, 11, generator=g)
    outs = []
    for plain in (True, False):
        lin.zero_grad(set_to_none=True)
        bl = [b.clone().requires_grad_(n) for b, n in zip(blocks, needs)]
        with plain_autograd(plain):
            y = concat_linear(lin, bl)
        y.backward(grad_out)
        outs.append((y.detach(), lin.weight.grad.clone(), lin.bias.grad.clone(),
                     [b.grad for b in bl]))
    (y0, w0, b0, bg0), (y1, w1, b1, bg1) = outs
    assert torch.allclose(y0, y1, atol=1e-6) and torch.allclose(w0, w1, atol=1e-5)
    assert torch.allclose(b0, b1, atol=1e-6)
    for a, b, n in zip(bg0, bg1, needs):
        assert (a is None and b is None) if not n else torch.allclose(a, b, atol=1e-5)


def test_concat_linear_refuses_double_backward():
    lin = torch.nn.Linear(5, 3)
    x = torch.randn(2, 2, requires_grad=True)
    y = concat_linear(lin, [x, torch.randn(2, 3)])
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


# --------------------------------------------------------------------------- trainers


def _weights(trainer):
    return {f"{n}.{k}": v.detach().clone() for n, net in trainer.nets.items()
            for k, v in net.state_dict().items()}


def _output_biases(trainer):
    return [net.fc_out.bias for name, net in trainer.nets.items() if name.startswith("D_")]


def _assert_stats_close(ref, fast, where):
    assert ref.keys() == fast.keys(), where
    for name in ref:
        assert torch.allclose(ref[name].float(), fast[name].float(), rtol=1e-4, atol=1e-5), (where, name)


def _lockstep(ref, fast, iters):
    """Run ``iteration()`` on both trainers and compare every critic / generator step.

    The critics' output biases get an analytically zero gradient (every critic-loss term is a
    difference of scores: WGAN means, per-sample gaps of the mutual-learning loss), so both
    implementations feed Adam pure rounding noise there, which its normalisation turns into
    +-lr steps of arbitrary sign.  Those biases are checked to stay within 2 lr per step of each
    other and then copied from the reference after every critic step, so that the next steps
    (and the generator loss, which reads raw critic scores) are compared on identical inputs."""
    recorded = []
    lr = ref.cfg.lr

    def snapshot(step):
        def wrapped(*args):
            out = step(*args)
            recorded.append(({k: v.detach().clone() for k, v in out.items()},
                             [b.detach().clone() for b in _output_biases(ref)]))
            return out
        return wrapped

    def check(step, kind):
        def wrapped(*args):
            out = step(*args)
            ref_stats, ref_biases = recorded.pop(0)
            _assert_stats_close(ref_stats, out, kind)
            with torch.no_grad():
                for b_fast, b_ref in zip(_output_biases(fast), ref_biases):
                    assert (b_fast - b_ref).abs().max() <= 2 * lr * ref.cfg.critic_steps * iters + 1e-6
                    b_fast.copy_(b_ref)
            return out
        return wrapped

    ref.critic_step, ref.generator_step = snapshot(ref.critic_step), snapshot(ref.generator_step)
    fast.critic_step = check(fast.critic_step, "critic step")
    fast.generator_step = check(fast.generator_step, "generator step")
    for _ in range(iters):
        _assert_stats_close(ref.iteration(), fast.iteration(), "iteration")
    assert not recorded


def _run_both(cls, cfg, data, iters=3):
    ref = cls(data, cfg, DIFF, seed=5, fused=False)
    fast = cls(data, cfg, DIFF, seed=5, fused=True)
    assert not ref.fused and fast.fused
    _lockstep(ref, fast, iters)
    w_ref, w_fast = _weights(ref), _weights(fast)
    assert w_ref.keys() == w_fast.keys()
    for name in w_ref:
        assert torch.allclose(w_ref[name], w_fast[name], rtol=1e-4, atol=1e-6), name
    assert torch.equal(ref.generator.get_state(), fast.generator.get_state())
    assert torch.allclose(ref.gp.value, fast.gp.value)
    for opt_name in ref.optimizers:       # Adam moments too
        for st_ref, st_fast in zip(ref.optimizers[opt_name].state.values(),
                                   fast.optimizers[opt_name].state.values()):
            assert torch.allclose(st_ref["exp_avg"], st_fast["exp_avg"], rtol=1e-3, atol=1e-6), opt_name


@pytest.mark.parametrize("cls, cfg", [
    (DRGTrainer, DRGConfig(**SMALL)),
    (DFGTrainer, DFGConfig(**SMALL)),
    (DFGTrainer, DFGConfig(**SMALL, freeze_dec=False, adaptive_gp=False)),
    (DFGTrainer, DFGConfig(**SMALL, use_sc=False)),
    (DFGTrainer, DFGConfig(**SMALL, diffusion_aug=False)),
    (DFGTrainer, DFGConfig(**SMALL, gamma_dist=0.0)),
], ids=["drg", "dfg", "dfg-train-dec", "dfg-no-sc", "dfg-no-aug", "dfg-no-ml"])
def test_fused_training_matches_reference(data, cls, cfg):
    _run_both(cls, cfg, data)


def test_fused_is_the_default_and_trains_epochs(data):
    trainer = DFGTrainer(data, DFGConfig(**SMALL), DIFF, seed=2)
    assert trainer.fused
    trainer.train(1)
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.history[-1].values())


def _global_flops(fn) -> int:
    class GlobalOnly:                   # FlopCounterMode's module hooks break on autograd.grad
        parents = {"Global"}            # w.r.t. a leaf (the reference gradient penalty)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("cls, cfg_cls", [(DRGTrainer, DRGConfig), (DFGTrainer, DFGConfig)])
def test_fused_path_does_fewer_matmul_flops(data, cls, cfg_cls):
    cfg = cfg_cls(**SMALL)
    ref, fast = (cls(data, cfg, DIFF, seed=0, fused=f) for f in (False, True))
    f_ref, f_fast = _global_flops(ref.iteration), _global_flops(fast.iteration)
    assert 0 < f_fast < f_ref


@pytest.mark.parametrize("cls, cfg", [(DRGTrainer, DRGConfig(**SMALL)), (DFGTrainer, DFGConfig(**SMALL))])
def test_iteration_never_reads_tensors_on_the_host(data, cls, cfg, monkeypatch):
    trainer = cls(data, cfg, DIFF, seed=0)
    trainer.iteration()

    def refuse(self, *args, **kwargs):
        raise AssertionError("host read of a tensor inside the training iteration")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    stats = trainer.iteration()
    monkeypatch.undo()
    assert all(torch.isfinite(v).all() for v in stats.values())


def test_bf16_uses_reference_path(data):
    from zerodiffpp.config import RuntimeConfig

    rt = RuntimeConfig(device="cpu", precision="bf16", progress=False)
    trainer = DFGTrainer(data, dataclasses.replace(DFGConfig(**SMALL)), DIFF, seed=0, runtime=rt)
    assert not trainer.fused
    stats = trainer.iteration()
    assert all(torch.isfinite(v.float()).all() for v in stats.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls, cfg", [(DRGTrainer, DRGConfig(**SMALL)), (DFGTrainer, DFGConfig(**SMALL))])
def test_fused_training_matches_reference_on_cuda(data, cls, cfg):
    torch.backends.cuda.matmul.allow_tf32 = False
    ref = cls(data, cfg, DIFF, seed=5, device="cuda", fused=False)
    fast = cls(data, cfg, DIFF, seed=5, device="cuda", fused=True)
    _lockstep(ref, fast, 2)
    w_ref, w_fast = _weights(ref), _weights(fast)
    for name in w_ref:
        assert torch.allclose(w_ref[name], w_fast[name], rtol=1e-4, atol=1e-6), name
