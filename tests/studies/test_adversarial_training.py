"""Model-consistent adversarial training: the divergences it uses, its loss, its step and the quirks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance
import scipy.special

from jaxattn.config import TrainConfig
from jaxattn.core.metrics import jsd, kl, tvd
from jaxattn.models.attention import masked_softmax
from jaxattn.studies.comparison import Comparison
from jaxattn.studies.wiegreffe_pinter.adversarial_training import (
    AdversaryOptions,
    adversarial_loss,
    adversarial_terms,
    make_adversary_step,
    summarise_adversaries,
)
from jaxattn.training.optimizers import make_optimizer
from jaxattn.training.train_state import stack_trees
from tests.helpers import toy_batch, toy_model

# Eager op-by-op execution compiles every primitive; one jit per function is much faster.
loss_fn = jax.jit(adversarial_loss, static_argnums=(0, 5))
terms_fn = jax.jit(adversarial_terms, static_argnums=(0, 4))


def _distributions(seed=0, rows=6, width=9):
    """Pairs of distributions with zeros at the same masked positions (as attention has)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((rows, width), bool)
    for i, n in enumerate(rng.integers(1, width + 1, size=rows)):
        mask[i, rng.choice(width, size=n, replace=False)] = True
    p = np.where(mask, rng.random((rows, width)), 0.0)
    q = np.where(mask, rng.random((rows, width)), 0.0)
    return p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True), mask


def test_divergences_match_numpy_references_with_zero_positions():
    p, q, _ = _distributions()
    got_kl = np.asarray(kl(jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)))
    np.testing.assert_allclose(got_kl, scipy.special.rel_entr(p, q).sum(1), rtol=1e-4, atol=1e-6)
    # scipy's Jensen-Shannon *distance* is the square root of the divergence (natural log here).
    ref_jsd = np.array([scipy.spatial.distance.jensenshannon(a, b) ** 2 for a, b in zip(p, q)])
    np.testing.assert_allclose(np.asarray(jsd(jnp.asarray(p), jnp.asarray(q))), ref_jsd,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(tvd(jnp.asarray(p), jnp.asarray(q))),
                               0.5 * np.abs(p - q).sum(1), rtol=1e-6)
    # eps is added to q only.
    np.testing.assert_allclose(np.asarray(kl(jnp.asarray(p), jnp.asarray(q), eps=1e-3)),
                               scipy.special.rel_entr(p, q + 1e-3).sum(1), rtol=1e-4, atol=1e-6)
    # Binary outputs [1 - a, a]: TVD is |a - b|.
    a, b = 0.8, 0.3
    assert float(tvd(jnp.array([1 - a, a]), jnp.array([1 - b, b]))) == pytest.approx(0.5)


def test_divergence_gradients_are_finite_at_zero_probability_positions():
    _, q, mask = _distributions(seed=1)
    scores = jnp.asarray(np.random.default_rng(2).normal(size=mask.shape), jnp.float32)

    def total(s, fn):
        return fn(masked_softmax(s, jnp.asarray(mask)), jnp.asarray(q, jnp.float32)).sum()

    for fn in (kl, jsd, tvd, lambda a, b: kl(a, b, eps=1e-10)):
        value, grad = jax.jit(jax.value_and_grad(total), static_argnums=1)(scores, fn)
        assert np.isfinite(float(value))
        grad = np.asarray(grad)
        assert np.all(np.isfinite(grad))
        assert np.all(grad[~mask] == 0.0)  # masked positions get no gradient


def _saturated_base(model, params):
    """The base's attention scorer scaled up until its softmax underflows to 0 on real tokens."""
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["attention"]["w2"]["kernel"] = params["attention"]["w2"]["kernel"] * 1e4
    return params


def test_loss_is_finite_when_base_attention_underflows_thanks_to_eps():
    model, base, batch = toy_model("binary", "average", seed=0)
    base = _saturated_base(model, base)
    _, base_attn = model.forward(base, batch)
    real = np.asarray(batch.mask)
    assert np.any(np.asarray(base_attn)[real] == 0.0), "the base must underflow for this test"
    adv = model.init(jax.random.key(7), batch)
    lam = jnp.float32(1.0)
    for eps, finite in ((1e-10, True), (0.0, False)):
        options = AdversaryOptions(kl_eps=eps)
        loss, grads = jax.jit(jax.value_and_grad(
            lambda p, o=options: adversarial_loss(model, p, base, batch, lam, o)))(adv)
        leaves = [np.asarray(g) for g in jax.tree_util.tree_leaves(grads)]
        ok = np.isfinite(float(loss)) and all(np.all(np.isfinite(g)) for g in leaves)
        assert ok == finite, (eps, float(loss))


def test_quirk_options_rescale_the_loss():
    model, base, batch = toy_model("binary", "average", seed=0)
    adv = model.init(jax.random.key(3), batch)
    zero = jnp.float32(0.0)
    plain = float(loss_fn(model, adv, base, batch, zero, AdversaryOptions()))
    half = float(loss_fn(model, adv, base, batch, zero, AdversaryOptions(half_binary_tvd=True)))
    summed = float(loss_fn(model, adv, base, batch, zero, AdversaryOptions(summed=True)))
    n_real = float(batch.weights.sum())
    assert half == pytest.approx(0.5 * plain, rel=1e-6)
    assert summed == pytest.approx(n_real * plain, rel=1e-5)
    distance, divergence = terms_fn(model, adv, base, batch, AdversaryOptions())
    w = np.asarray(batch.weights)
    lam = 0.7
    expected = ((np.asarray(distance) - lam * np.asarray(divergence)) * w).sum() / w.sum()
    got = float(loss_fn(model, adv, base, batch, jnp.float32(lam), AdversaryOptions()))
    assert got == pytest.approx(expected, rel=1e-5)


def test_vmapped_sweep_lowers_its_loss_and_larger_lambda_moves_attention_further():
    batch = toy_batch(lengths=(6, 9, 4, 8, 7, 5), vocab_size=30, pad_rows=2, seed=4)
    model, base, _ = toy_model("binary", "average", seed=0, batch=batch)
    lambdas = jnp.asarray([0.0, 0.1, 2.0], jnp.float32)
    optimizer = make_optimizer(TrainConfig(learning_rate=1e-2, weight_decay=0.0))
    options = AdversaryOptions()
    params = stack_trees([model.init(jax.random.key(11), batch)] * len(lambdas))
    opt_state = jax.vmap(optimizer.init)(params)
    step = jax.jit(jax.vmap(make_adversary_step(model, optimizer, options),
                            in_axes=(0, 0, None, 0, None)))
    losses = []
    for _ in range(60):
        params, opt_state, loss = step(params, opt_state, batch, lambdas, base)
        losses.append(np.asarray(loss))
    losses = np.stack(losses)
    assert np.all(np.isfinite(losses))
    assert np.all(losses[-5:].mean(0) < losses[:5].mean(0) - 1e-3), losses[[0, -1]]

    @jax.jit
    def distances(p):
        d, _ = adversarial_terms(model, p, base, batch, options)
        attn, base_attn = model.forward(p, batch)[1], model.forward(base, batch)[1]
        w = batch.weights
        return (d * w).sum() / w.sum(), (jsd(attn, base_attn) * w).sum() / w.sum()

    tvds, jsds = zip(*(map(float, distances(jax.tree_util.tree_map(lambda x, m=m: x[m], params)))
                       for m in range(len(lambdas))))
    assert jsds[2] > jsds[0] + 0.02, jsds
    assert jsds[2] >= jsds[1] >= jsds[0] - 1e-3, jsds
    assert tvds[0] < 0.1, tvds  # lambda 0 only matches the base's outputs


def test_summarise_adversaries_reduces_and_scores():
    rng = np.random.default_rng(0)
    m, n = 2, 5
    probs1 = rng.random((m, n))
    comp = Comparison(
        jsd=rng.random((m, n)).astype(np.float32) * 0.5,
        kl=rng.random((m, n)).astype(np.float32),
        tvd=rng.random((m, n)).astype(np.float32),
        probs=np.stack([1 - probs1, probs1], -1).astype(np.float32),
        base_probs=np.full((n, 2), 0.5, np.float32),
        max_attn=np.ones(n, np.float32),
    )
    labels = np.array([0, 1, 1, 0, 1])
    model, _, _ = toy_model("binary", "average")
    rows = summarise_adversaries(model, comp, labels, [0.0, 2.0], AdversaryOptions())
    np.testing.assert_allclose([r["tvd"] for r in rows], comp.tvd.mean(1), rtol=1e-6)
    np.testing.assert_allclose([r["jsd"] for r in rows], comp.jsd.mean(1), rtol=1e-6)
    assert rows[1]["objective"] == pytest.approx(comp.tvd[1].mean() - 2.0 * comp.kl[1].mean(), rel=1e-5)
    pred = probs1[0] > 0.5
    assert rows[0]["accuracy"] == pytest.approx(np.mean(pred == labels))
    quirky = summarise_adversaries(model, comp, labels, [0.0, 2.0],
                                   AdversaryOptions(summed=True, half_binary_tvd=True))
    np.testing.assert_allclose([r["tvd"] for r in quirky], 0.5 * comp.tvd.sum(1), rtol=1e-5)
    np.testing.assert_allclose([r["jsd"] for r in quirky], comp.jsd.sum(1), rtol=1e-5)
