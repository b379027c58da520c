"""Final softmax classifier (METHOD.md 4.3): learns, deterministic, weights, blocks, no DataLoader."""
import pytest
import torch

from zerodiffpp.classifier import SoftmaxClassifier, log_probs, predict, train_classifier
from zerodiffpp.io import DataError


def toy(n_per_class=60, k=4, dim=10, seed=0, sep=3.0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dim, generator=g) * sep
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = centers[y] + torch.randn(len(y), dim, generator=g)
    return x, y


def fit(x, y, k, seed=0, **kw):
    opts = dict(epochs=15, lr=1e-2, batch_size=32)
    opts.update(kw)
    return train_classifier(x, y, k, generator=torch.Generator().manual_seed(seed), **opts)


def test_init_matches_method():
    m = SoftmaxClassifier(500, 40, torch.Generator().manual_seed(0))
    assert torch.all(m.fc.bias == 0)
    assert abs(m.fc.weight.std().item() - 0.02) < 1e-3
    lp = m(torch.rand(3, 500))
    assert torch.allclose(lp.exp().sum(1), torch.ones(3))


def test_learns_separable_toy_problem():
    x, y = toy()
    r = fit(x, y, 4)
    assert (predict(r.model, x) == y).float().mean() > 0.97
    assert r.losses[-1] < r.losses[0]
    assert len(r.losses) == 15 and not r.model.training


def test_deterministic_and_seed_dependent():
    x, y = toy()
    a, b, c = fit(x, y, 4, seed=1), fit(x, y, 4, seed=1), fit(x, y, 4, seed=2)
    assert torch.equal(a.model.fc.weight, b.model.fc.weight)
    assert a.losses == b.losses
    assert not torch.equal(a.model.fc.weight, c.model.fc.weight)


def test_blocks_equal_concatenated_tensor():
    x, y = toy()
    a = fit(x, y, 4)
    b = fit([x[:, :3], x[:, 3:]], y, 4)
    assert torch.allclose(a.model.fc.weight, b.model.fc.weight, atol=1e-6)
    assert torch.equal(predict(a.model, x), predict(b.model, [x[:, :3], x[:, 3:]]))


def test_weights_unit_equals_unweighted_and_zero_weight_ignores_samples():
    x, y = toy()
    plain = fit(x, y, 4)
    ones = fit(x, y, 4, weights=torch.ones(len(y)))
    assert torch.allclose(plain.model.fc.weight, ones.model.fc.weight, atol=1e-6)
    # Flip the labels of class 0 to class 1 but give those samples weight 0: class 0 is
    # then never a target, so the model cannot predict it for class-0 inputs.
    y_bad = y.clone()
    y_bad[y == 0] = 1
    w = torch.ones(len(y))
    w[y == 0] = 0.0
    r = fit(x, y_bad, 4, weights=w)
    keep = y != 0
    assert (predict(r.model, x[keep]) == y[keep]).float().mean() > 0.97


def test_monitor_called_every_epoch_and_log_probs_chunked():
    x, y = toy()
    r = fit(x, y, 4, epochs=3, monitor=lambda m: float((predict(m, x) == y).float().mean()))
    assert len(r.monitor) == 3
    full = log_probs(r.model, x)
    assert torch.allclose(full, log_probs(r.model, x, chunk=7))


def test_bad_inputs_are_clear_errors():
    x, y = toy()
    with pytest.raises(DataError, match="labels must lie"):
        fit(x, y, 3)
    with pytest.raises(DataError, match="weights"):
        fit(x, y, 4, weights=-torch.ones(len(y)))
    with pytest.raises(DataError, match="rows"):
        fit([x, x[:5]], y, 4)
    with pytest.raises(DataError, match="one dtype and device"):
        fit([x, x.double()], y, 4)


def _autograd_reference(x, y, k, *, epochs, lr, batch_size, seed, weights=None):
    """The straightforward implementation the hand-written step replaces: autograd through
    Linear + log-softmax + (weighted) NLL, same initialisation, permutations and Adam."""
    g = torch.Generator().manual_seed(seed)
    model = SoftmaxClassifier(x.shape[1], k, g)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    losses = []
    for _ in range(epochs):
        perm, total = torch.randperm(len(y), generator=g), 0.0
        for s in range(0, len(y), batch_size):
            idx = perm[s:s + batch_size]
            nll = torch.nn.functional.nll_loss(model(x[idx]), y[idx], reduction="none")
            w = torch.ones(len(idx)) if weights is None else weights[idx]
            loss = (nll * w).sum() / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(y))
    return model, losses


@pytest.mark.parametrize("weighted", [False, True])
def test_hand_written_step_matches_autograd(weighted):
    torch.manual_seed(0)
    x, y = torch.rand(300, 37), torch.randint(0, 6, (300,))
    w = torch.rand(300) * 2 if weighted else None
    opts = dict(epochs=4, lr=3e-3, batch_size=64)
    ref, ref_losses = _autograd_reference(x, y, 6, seed=5, weights=w, **opts)
    fast = train_classifier([x[:, :20], x[:, 20:]], y, 6, generator=torch.Generator().manual_seed(5),
                            weights=w, **opts)
    assert torch.allclose(fast.model.fc.weight, ref.fc.weight, rtol=1e-4, atol=1e-6)
    assert torch.allclose(fast.model.fc.bias, ref.fc.bias, rtol=1e-4, atol=1e-6)
    assert fast.losses == pytest.approx(ref_losses, rel=1e-5)


def test_autograd_reference_path_matches_default_path():
    x, y = toy()
    w = torch.rand(len(y))
    a = fit(x, y, 4, weights=w)
    b = fit(x, y, 4, weights=w, autograd=True)
    assert torch.allclose(a.model.fc.weight, b.model.fc.weight, rtol=1e-4, atol=1e-6)
    assert a.losses == pytest.approx(b.losses, rel=1e-5)
