"""Networks: causality, padding, the squashed-Gaussian head, the batched critic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from odtbench.errors import OdtbenchError
from odtbench.methods.nets import (
    CausalTransformer,
    DecisionTransformer,
    Dropout,
    QEnsemble,
    SquashedGaussian,
)

torch.set_num_threads(1)
S, A = 3, 2


def _dt(stochastic: bool = False, seed: int = 0) -> DecisionTransformer:
    torch.manual_seed(seed)
    return DecisionTransformer(S, A, embed_dim=16, n_layer=2, n_head=2, dropout=0.1,
                               stochastic=stochastic).eval()


def _inputs(b: int = 2, t: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, S, generator=g), torch.rand(b, t, A, generator=g) * 2 - 1,
            torch.randn(b, t, generator=g))


def test_action_at_t_does_not_see_a_t_but_later_positions_do():
    dt = _dt()
    s, a, r = _inputs()
    base = dt(s, a, r)
    a2 = a.clone()
    a2[:, 2] = -a2[:, 2] + 0.3
    out = dt(s, a2, r)
    torch.testing.assert_close(out[:, :3], base[:, :3], rtol=0, atol=1e-6)
    assert (out[:, 3:] - base[:, 3:]).abs().max() > 1e-4


def test_future_states_and_returns_do_not_leak_backwards():
    dt = _dt()
    s, a, r = _inputs()
    s2, r2 = s.clone(), r.clone()
    s2[:, 3:] += 5.0
    r2[:, 3:] -= 2.0
    torch.testing.assert_close(dt(s2, a, r2)[:, :3], dt(s, a, r)[:, :3], rtol=0, atol=1e-6)


def test_left_padding_with_mask_leaves_real_positions_unchanged():
    dt = _dt()
    s, a, r = _inputs(t=3)
    pad = 4
    g = torch.Generator().manual_seed(7)  # garbage in the padded slots must not matter
    sp = torch.cat((torch.randn(2, pad, S, generator=g) * 3, s), dim=1)
    ap = torch.cat((torch.randn(2, pad, A, generator=g), a), dim=1)
    rp = torch.cat((torch.randn(2, pad, generator=g), r), dim=1)
    mask = torch.cat((torch.zeros(2, pad), torch.ones(2, 3)), dim=1)
    torch.testing.assert_close(dt(sp, ap, rp, mask)[:, pad:], dt(s, a, r), rtol=0, atol=1e-5)
    assert torch.isfinite(dt(sp, ap, rp, mask)).all()  # fully padded rows stay finite


def test_all_ones_mask_matches_is_causal_fast_path_and_rtg_shapes():
    dt = _dt(stochastic=False)
    s, a, r = _inputs()
    fast = dt(s, a, r)
    torch.testing.assert_close(dt(s, a, r, torch.ones(2, 5)), fast, rtol=0, atol=1e-5)
    torch.testing.assert_close(dt(s, a, r.unsqueeze(-1)), fast, rtol=0, atol=0)


def test_dropout_active_only_in_train_mode():
    dt = _dt()
    s, a, r = _inputs()
    torch.testing.assert_close(dt(s, a, r), dt(s, a, r), rtol=0, atol=0)
    dt.train()
    assert (dt(s, a, r) - dt(s, a, r)).abs().max() > 0


def test_cpu_dropout_is_bernoulli_with_the_right_rate_and_scale():
    drop = Dropout(0.1).train()
    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    y = drop(x)
    kept = y.detach() > 0
    assert abs(kept.float().mean().item() - 0.9) < 3e-3  # 5 sigma at n = 400k
    assert torch.allclose(y[kept], torch.tensor(1 / 0.9))
    y.sum().backward()  # the gradient is the same scaled mask
    assert torch.equal(x.grad, y.detach())
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the global torch RNG drives it: seeded, reproducible
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
    with pytest.raises(OdtbenchError, match="dropout probability"):
        Dropout(1.0)


def test_written_out_cpu_attention_matches_sdpa(monkeypatch):
    """With every weight kept, the train-mode CPU attention (written out for the cheap
    dropout masks) equals SDPA's, with and without a padding mask."""
    net = CausalTransformer(16, n_layer=2, n_head=2, dropout=0.1).train()
    for m in net.modules():
        if isinstance(m, Dropout):
            monkeypatch.setattr(m, "scaled_keep_mask", lambda x: torch.ones_like(x))
    x = torch.randn(3, 6, 16)
    pad = torch.ones(3, 6)
    pad[0, :2] = 0
    for mask in (None, pad):
        ours = net(x, mask)
        for blk in net.blocks:
            blk.attn.attn_pdrop = 0.0  # -> the SDPA branch, no dropout
        ref = net(x, mask)
        for blk in net.blocks:
            blk.attn.attn_pdrop = 0.1
        assert torch.allclose(ours, ref, atol=1e-5)


def test_gpt2_init_and_no_position_tables():
    torch.manual_seed(0)
    tr = CausalTransformer(embed_dim=64, n_layer=2, n_head=4, dropout=0.0)
    w = tr.blocks[0].mlp[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert all((m.bias == 0).all() for m in tr.modules() if isinstance(m, torch.nn.Linear))
    assert tr.blocks[0].mlp[0].out_features == 256  # n_inner = 4 * embed_dim
    assert not any(isinstance(m, torch.nn.Embedding) for m in _dt().modules())
    with pytest.raises(OdtbenchError, match="divisible"):
        CausalTransformer(embed_dim=10, n_layer=1, n_head=3, dropout=0.0)


def test_stochastic_head_matches_torch_distributions():
    dt = _dt(stochastic=True)
    s, a, r = _inputs()
    dist = dt(s, a, r)
    assert isinstance(dist, SquashedGaussian)
    ref = TransformedDistribution(Normal(dist.mu, dist.std), [TanhTransform()])
    actions = a.clamp(-1 + 1e-6, 1 - 1e-6)
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions).sum(-1),
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(dist.mean, torch.tanh(dist.mu))
    # Entropy: minus the log-prob of one reparameterised sample, computed from u = atanh(a).
    torch.manual_seed(3)
    x, logp = dist.rsample_with_log_prob()
    torch.manual_seed(3)
    ent = dist.entropy()
    torch.testing.assert_close(ent, -logp)
    torch.manual_seed(3)
    u = dist.mu + dist.std * torch.randn_like(dist.mu)
    tanh = TanhTransform(cache_size=1)  # cached inverse: exact even where tanh(u) rounds to 1
    cached = TransformedDistribution(Normal(dist.mu, dist.std), [tanh])
    torch.testing.assert_close(x, tanh(u))
    torch.testing.assert_close(logp, cached.log_prob(tanh(u)).sum(-1), rtol=1e-5, atol=1e-4)
    # Orthogonal head init with zero bias.
    w = dt.head.mu.weight
    torch.testing.assert_close(w @ w.T, torch.eye(A), rtol=0, atol=1e-5)
    assert (dt.head.log_std.bias == 0).all()


def test_log_std_is_squashed_into_bounds_and_jacobian_is_stable():
    dt = _dt(stochastic=True)
    s, a, r = _inputs()
    dist = dt(s * 1e4, a, r * 1e4)
    assert dist.log_std.min() >= -5.0 and dist.log_std.max() <= 2.0
    far = SquashedGaussian(torch.full((1, A), 30.0), torch.zeros(1, A))
    assert torch.isfinite(far.entropy()).all()


def _manual_critic(q: QEnsemble, i: int, x: torch.Tensor) -> torch.Tensor:
    h = x
    for layer in range(3):
        h = F.linear(h, q.weights[layer][i].T, q.biases[layer][i, 0])
        if layer < 2:
            h = F.relu(F.layer_norm(h, h.shape[-1:]) if q.layernorm else h)
    return h.squeeze(-1)


@pytest.mark.parametrize("layernorm", [False, True])
def test_qensemble_batched_equals_independent_mlps(layernorm):
    torch.manual_seed(0)
    q = QEnsemble(S, A, n_critics=3, hidden=8, layernorm=layernorm)
    s, a, _ = _inputs(b=2, t=4)
    out = q(s, a)
    assert out.shape == (3, 2, 4)
    x = torch.cat((s, a), -1)
    for i in range(3):
        torch.testing.assert_close(out[i], _manual_critic(q, i, x))
    torch.testing.assert_close(q.q1(s, a), out[0])
    assert not (out[0] == out[1]).all()  # independently initialised
    bound = 1 / (S + A) ** 0.5  # default nn.Linear init range
    assert q.weights[0].abs().max() <= bound and q.weights[0].abs().max() > 0.8 * bound


def test_q1_detach_params_routes_gradient_to_actions_only():
    torch.manual_seed(0)
    q = QEnsemble(S, A, n_critics=2, hidden=8)
    s, a, _ = _inputs()
    a = a.requires_grad_(True)
    q.q1(s, a, detach_params=True).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in q.parameters())
