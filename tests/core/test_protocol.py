"""A model defined here, outside jaxattn, through every analysis of the protocol.

It has only the required entry points (no ``featurize``, no ``affine_decoder``), so the analyses
take their generic paths; each is checked against a brute-force loop or finite differences.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core import (
    AttentionModel,
    Batch,
    Encoded,
    delete_token,
    forward,
    has_affine_decoder,
    has_features,
)
from jaxattn.core.metrics import tvd
from jaxattn.explain import importance, interventions
from jaxattn.models.attention import masked_softmax


class _Net(nn.Module):
    """Embedding, a running mean of the embeddings (context), a dot scorer, a tanh decoder."""

    vocab_size: int = 30
    width: int = 6

    def setup(self):
        self.embedder = nn.Embed(self.vocab_size, self.width)
        self.mix = nn.Dense(self.width)
        self.score_w = nn.Dense(1, use_bias=False)
        self.out = nn.Dense(1)

    def embed(self, tokens):
        return self.embedder(tokens)

    def encode(self, embedded, valid, mask):
        v = valid[..., None].astype(embedded.dtype)
        running = jnp.cumsum(embedded * v, axis=1) / jnp.maximum(jnp.cumsum(v, axis=1), 1.0)
        return Encoded(hidden=jnp.tanh(self.mix(embedded + running)) * v, mask=mask)

    def score(self, hidden):
        return self.score_w(hidden)[..., 0]

    def decode(self, hidden, attn):
        return self.out(jnp.tanh(jnp.einsum("bt,bth->bh", attn, hidden)) ** 2)

    def __call__(self, tokens, valid, mask):
        enc = self.encode(self.embed(tokens), valid, mask)
        return self.decode(enc.hidden, masked_softmax(self.score(enc.hidden), mask))


@dataclasses.dataclass(frozen=True)
class RunningMeanModel:
    """Satisfies AttentionModel with plain methods over a Flax module."""

    net: _Net = _Net()
    task: str = "binary"

    def init(self, rng, batch: Batch):
        return self.net.init(rng, batch.tokens, batch.valid, batch.mask)["params"]

    def embed(self, params, tokens):
        return self.net.apply({"params": params}, tokens, method=_Net.embed)

    def encode_embedded(self, params, batch: Batch, embedded):
        return self.net.apply(
            {"params": params}, embedded, batch.valid, batch.mask, method=_Net.encode
        )

    def attend(self, params, enc: Encoded):
        scores = self.net.apply({"params": params}, enc.hidden, method=_Net.score)
        return masked_softmax(scores, enc.mask)

    def decode(self, params, enc: Encoded, attn):
        return self.net.apply({"params": params}, enc.hidden, attn, method=_Net.decode)

    def probs(self, logits):
        p = jax.nn.sigmoid(logits)
        return jnp.concatenate([1.0 - p, p], axis=-1)


def test_the_model_satisfies_the_protocol_without_fast_paths(setup):
    model, _, _ = setup
    assert isinstance(model, AttentionModel)
    assert not has_features(model) and not has_affine_decoder(model)


def test_leave_one_out_equals_a_brute_force_loop(setup):
    model, params, batch = setup
    got = np.asarray(importance.leave_one_out(model, params, batch, chunk=2))
    probs = np.asarray(model.probs(forward(model, params, batch)[0]))
    want = np.zeros_like(got)
    for t in range(batch.tokens.shape[1]):
        shorter = delete_token(batch, t)
        changed = np.asarray(model.probs(forward(model, params, shorter)[0]))
        want[:, t] = np.asarray(tvd(changed, probs))
    want = np.where(np.asarray(batch.mask), want, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got[~np.asarray(batch.mask)] == 0) and got[np.asarray(batch.mask)].max() > 0


def test_gradient_times_input_matches_finite_differences(setup):
    """d/d eps of p(e + eps * e_t) at 0 equals grad_t . e_t (attention held: below attention)."""
    model, params, batch = setup
    got = np.asarray(importance.gradient_times_input(model, params, batch, hold_attention=False))
    embedded = model.embed(params, batch.tokens)
    target = np.asarray(importance.predicted_class(model, params, batch))

    def prob(e):
        enc = model.encode_embedded(params, batch, e)
        p = model.probs(model.decode(params, enc, model.attend(params, enc)))
        return np.take_along_axis(np.asarray(p, np.float64), target[:, None], 1)[:, 0]

    eps = 1e-2
    mask = np.asarray(batch.mask)
    for t in range(batch.tokens.shape[1]):
        if not mask[:, t].any():
            continue
        onehot = jnp.zeros(batch.tokens.shape[1]).at[t].set(1.0)[None, :, None]
        up, down = prob(embedded * (1 + eps * onehot)), prob(embedded * (1 - eps * onehot))
        fd = (up - down) / (2 * eps)
        np.testing.assert_allclose(got[mask[:, t], t], fd[mask[:, t]], rtol=2e-2, atol=2e-4)


def test_integrated_gradients_are_complete(setup):
    model, params, batch = setup
    ig = np.asarray(importance.integrated_gradients(model, params, batch, steps=200, chunk=20))
    target = importance.predicted_class(model, params, batch)
    embedded = model.embed(params, batch.tokens)
    base = jnp.where(batch.mask[..., None], 0.0, embedded)
    p_in = importance._class_probability(model, params, batch, embedded, target)
    p_base = importance._class_probability(model, params, batch, base, target)
    real = np.asarray(batch.weights) > 0
    np.testing.assert_allclose(
        ig.sum(-1)[real], np.asarray(p_in - p_base)[real], rtol=1e-2, atol=1e-4
    )


def test_permutation_decodes_in_full_like_a_loop(setup):
    model, params, batch = setup
    res = interventions.permute_attention(model, params, batch, jax.random.key(0), 4)
    enc = model.encode_embedded(params, batch, model.embed(params, batch.tokens))
    attn = model.attend(params, enc)
    probs = model.probs(model.decode(params, enc, attn))
    keys = interventions.instance_keys(jax.random.key(0), batch.index)
    perms = jax.vmap(interventions.permutation_indices, in_axes=(0, 0, None))(keys, enc.mask, 4)
    for p in range(4):
        permuted = jnp.take_along_axis(attn, perms[:, p], axis=-1)
        out = model.probs(model.decode(params, enc, permuted))
        np.testing.assert_allclose(
            np.asarray(res.tvd[:, p]), np.asarray(tvd(out, probs)), rtol=1e-5, atol=1e-6
        )


def test_adversarial_search_runs_and_keeps_the_output(setup):
    model, params, batch = setup
    res = interventions.search_adversarial_attention(
        model, params, batch, jax.random.key(0), num_adversaries=3, steps=30
    )
    assert res.attn.shape == (4, 3, batch.tokens.shape[1])
    assert np.all(np.asarray(res.best_tvd) <= 0.05 + 1e-6)
    mask = np.asarray(batch.mask)
    assert np.all(np.asarray(res.attn)[~mask[:, None, :].repeat(3, 1)] == 0)


def test_a_model_defined_here_trains_and_gets_the_full_report(tmp_path):
    """jaxattn.train and jaxattn.analyze on a model that jaxattn knows nothing of."""
    import json

    import jaxattn

    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=200))
    model = RunningMeanModel(net=_Net(vocab_size=len(data.vocab), width=8))
    cfg = jaxattn.TrainConfig(epochs=1, buckets=(64,))
    params, metrics = jaxattn.train(model, data, cfg, out=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "params.msgpack").exists() and metrics["best_epoch"] == 1
    again, _ = jaxattn.train(model, data, cfg, out=tmp_path / "run", progress=False)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, again)  # finished: read back
    report = jaxattn.analyze(
        model, params, data, out=tmp_path / "run" / "analysis", limit=12, progress=False,
        num_permutations=4, num_adversaries=2, adv_steps=5, ig_steps=4, ig_chunk=2, samples=3,
        buckets=(64,),
    )
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["n"] == 12 and {"attn_grad", "attn_loo", "attn_ig"} <= set(summary["kendall"])
    assert "permutation" in summary and "adversarial" in summary
    assert report.read_text().count('class="heat"') == 3
