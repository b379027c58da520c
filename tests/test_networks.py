"""Network shapes, initialisation and the critic condition/score split."""
import pytest
import torch

from zerodiffpp.networks import (DFG_NETWORKS, DRG_NETWORKS, NETWORKS, NetworkDims, build_networks,
                                 count_parameters, reparameterize)

DIMS = NetworkDims(x_dim=12, c_dim=10, attr_dim=6, hidden=16)
B = 5


@pytest.fixture(scope="module")
def nets():
    return build_networks(DRG_NETWORKS + DFG_NETWORKS, DIMS, normalize_dec=True,
                          generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return dict(x=torch.rand(B, 12, generator=g), c=torch.rand(B, 10, generator=g),
                a=torch.rand(B, 6, generator=g), z=torch.randn(B, 6, generator=g),
                t=torch.tensor([0, 1, 2, 3, 1]))


def test_dims_default_to_attr_dim():
    assert DIMS.z_dim == 6 and DIMS.t_dim == 6
    assert NetworkDims.from_meta(DIMS.to_meta()) == DIMS


def test_registry_covers_all_networks():
    assert set(NETWORKS) == set(DRG_NETWORKS) | set(DFG_NETWORKS)


def test_generator_shapes_and_range(nets, inputs):
    i = inputs
    c_hat = nets["R"](i["z"], i["a"], i["c"], i["t"])
    assert c_hat.shape == (B, 10) and torch.all((c_hat > 0) & (c_hat < 1))
    x_hat = nets["G"](i["z"], i["a"], i["c"], i["x"], i["t"])
    assert x_hat.shape == (B, 12) and torch.all((x_hat > 0) & (x_hat < 1))
    # G's first layer sees z_dim + 3 d + x_dim inputs (METHOD.md 2.4)
    assert nets["G"].net.fc1.in_features == 6 + 3 * 6 + 12
    mu, log_var = nets["E"](i["x"], i["a"])
    assert mu.shape == log_var.shape == (B, 6)
    z = reparameterize(mu, log_var, torch.Generator().manual_seed(0))
    assert z.shape == (B, 6)


def test_critic_shapes_and_split(nets, inputs):
    i = inputs
    calls = {
        "D_x0": (i["x"], i["a"]),
        "D_xc": (i["x"], i["c"]),
        "D_xt": (i["x"], i["x"] * 0.5, i["a"], i["c"], i["t"]),
        "D_r0": (i["c"], i["a"]),
        "D_rt": (i["c"], i["c"] * 0.5, i["a"], i["t"]),
    }
    for name, args in calls.items():
        critic = nets[name]
        out = critic(*args)
        assert out.shape == (B, 1), name
        # forward == score(u, condition(rest)); score broadcasts a stacked (2, B, .) input
        cond_h = critic.condition(*args[1:])
        assert torch.allclose(out, critic.score(args[0], cond_h))
        both = critic.score(torch.stack([args[0], args[0]]), cond_h)
        assert both.shape == (2, B, 1) and torch.allclose(both[1], out, atol=1e-6)


def test_decoder_hidden_and_normalisation(nets, inputs):
    out, hidden = nets["Dec"].forward_with_hidden(inputs["x"])
    assert out.shape == (B, 6) and hidden.shape == (B, 16)
    assert torch.allclose(out.norm(dim=1), torch.ones(B), atol=1e-5)
    raw = build_networks(("Dec",), DIMS, normalize_dec=False)["Dec"](inputs["x"])
    assert not torch.allclose(raw.norm(dim=1), torch.ones(B), atol=1e-3)
    assert nets["Dec_r"](inputs["c"]).shape == (B, 6)


def test_init_normal_002_zero_bias():
    big = NetworkDims(x_dim=256, c_dim=256, attr_dim=16, hidden=256)
    G = build_networks(("G",), big, True, generator=torch.Generator().manual_seed(0))["G"]
    w = G.net.fc1.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05) and abs(w.mean().item()) < 1e-3
    assert all(torch.all(m.bias == 0) for m in G.modules() if isinstance(m, torch.nn.Linear))


def test_build_is_reproducible():
    a = build_networks(DFG_NETWORKS, DIMS, True, generator=torch.Generator().manual_seed(3))
    b = build_networks(DFG_NETWORKS, DIMS, True, generator=torch.Generator().manual_seed(3))
    for name in DFG_NETWORKS:
        for (k, p), (_, q) in zip(a[name].state_dict().items(), b[name].state_dict().items()):
            assert torch.equal(p, q), (name, k)
        assert count_parameters(a[name]) > 0
