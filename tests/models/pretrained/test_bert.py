"""The BERT encoder against a float64 numpy re-implementation that loops over examples, layers
and heads; the head-maps seam."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from jaxattn.core.protocol import HeadMaps
from jaxattn.models.pretrained.bert import Bert, BertConfig
from jaxattn.models.pretrained.heads import cls_logits

CONFIG = BertConfig(
    vocab_size=50,
    hidden_size=24,
    num_layers=3,
    num_heads=4,
    intermediate_size=30,
    max_position_embeddings=16,
    layer_norm_eps=1e-6,
    num_labels=3,
)


def perturbed_params(model, seed=0):
    """HF-style init has unit LayerNorms and zero biases, which would hide mapping mistakes."""
    params = model.init(jax.random.PRNGKey(seed))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [x + 0.2 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(tree, leaves)


def inputs(B=3, T=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, CONFIG.vocab_size, size=(B, T)).astype(np.int32)
    lengths = np.array([T, T - 3, 2][:B])
    valid = np.arange(T)[None, :] < lengths[:, None]
    types = np.where(np.arange(T)[None, :] >= lengths[:, None] // 2, 1, 0).astype(np.int32)
    ids = np.where(valid, ids, 0).astype(np.int32)
    types = np.where(valid, types, 0).astype(np.int32)
    return jnp.asarray(ids), jnp.asarray(types), jnp.asarray(valid)


def numpy_bert(config, params, ids, types, valid, replace=None):
    """Hidden states [L+1, B, T, E] and probabilities [L, B, H, T, T] in float64, one example,
    one layer and one head at a time; ``replace = (layer, head, maps [B, T, T])``."""
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    ids, types, valid = np.asarray(ids), np.asarray(types), np.asarray(valid)
    B, T = ids.shape
    H, D, eps = config.num_heads, config.head_size, config.layer_norm_eps

    def ln(x, scale, bias):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * scale + bias

    def gelu(x):
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))

    e, lay = p["embeddings"], p["layers"]
    states = np.zeros((config.num_layers + 1, B, T, config.hidden_size))
    probs_all = np.zeros((config.num_layers, B, H, T, T))
    last = np.zeros((B, T, config.hidden_size))
    for b in range(B):
        x = e["word"][ids[b]] + e["token_type"][types[b]] + e["position"][:T]
        x = ln(x, e["ln"]["scale"], e["ln"]["bias"])
        states[0, b] = x
        for li in range(config.num_layers):

            def lin(v, name, li=li):
                return v @ lay[name]["kernel"][li] + lay[name]["bias"][li]

            a_in = (
                ln(x, lay["attn_ln"]["scale"][li], lay["attn_ln"]["bias"][li])
                if config.pre_ln
                else x
            )
            q, k, v = lin(a_in, "query"), lin(a_in, "key"), lin(a_in, "value")
            context = np.zeros((T, config.hidden_size))
            for h in range(H):
                cols = slice(h * D, (h + 1) * D)
                scores = q[:, cols] @ k[:, cols].T / np.sqrt(D)
                scores[:, ~valid[b]] = -np.inf
                prob = np.exp(scores - scores.max(-1, keepdims=True))
                prob /= prob.sum(-1, keepdims=True)
                if replace is not None and (li, h) == replace[:2]:
                    prob = np.asarray(replace[2][b], np.float64)
                probs_all[li, b, h] = prob
                context[:, cols] = prob @ v[:, cols]
            attended = lin(context, "attn_out")
            if config.pre_ln:
                x = x + attended
                f_in = ln(x, lay["out_ln"]["scale"][li], lay["out_ln"]["bias"][li])
                x = x + lin(gelu(lin(f_in, "intermediate")), "output")
            else:
                x = ln(attended + x, lay["attn_ln"]["scale"][li], lay["attn_ln"]["bias"][li])
                out = lin(gelu(lin(x, "intermediate")), "output")
                x = ln(out + x, lay["out_ln"]["scale"][li], lay["out_ln"]["bias"][li])
            states[li + 1, b] = x
        last[b] = ln(x, p["final_ln"]["scale"], p["final_ln"]["bias"]) if config.pre_ln else x
    return last, states, probs_all


def random_maps(keys, shape, seed):
    """Random distributions over the last axis of ``shape``, zero where ``keys`` (broadcast to
    ``shape``) is False."""
    rng = np.random.default_rng(seed)
    raw = rng.gamma(1.0, size=shape) * np.asarray(keys)
    return jnp.asarray(raw / raw.sum(-1, keepdims=True), jnp.float32)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_forward_matches_loop_reference(pre_ln):
    model = Bert(dataclasses.replace(CONFIG, pre_ln=pre_ln))
    params = perturbed_params(model)
    ids, types, valid = inputs()
    out = jax.jit(model.encode, static_argnames="return_attention")(
        params, ids, types, valid, return_attention=True
    )
    last, states, probs = numpy_bert(model.config, params, ids, types, valid)
    np.testing.assert_allclose(out.hidden, last, atol=2e-5)
    np.testing.assert_allclose(out.hidden_states, states, atol=2e-5)
    np.testing.assert_allclose(out.attentions, probs, atol=1e-6)
    assert out.attentions.shape == (3, 3, 4, 7, 7)
    # Padded keys get nothing; every query row is a distribution over the valid keys.
    assert float(jnp.abs(jnp.where(valid[None, :, None, None, :], 0.0, out.attentions)).max()) == 0
    np.testing.assert_allclose(out.attentions.sum(-1), 1.0, atol=1e-6)


def test_pre_ln_differs_from_post_ln():
    params = perturbed_params(Bert(dataclasses.replace(CONFIG, pre_ln=True)))
    ids, types, valid = inputs()
    pre = Bert(dataclasses.replace(CONFIG, pre_ln=True)).encode(params, ids, types, valid)
    post = Bert(CONFIG).encode(params, ids, types, valid)
    assert float(jnp.abs(pre.hidden - post.hidden).max()) > 1e-2


def test_every_head_given_its_own_maps_reproduces_the_forward():
    model = Bert(CONFIG)
    params = perturbed_params(model)
    ids, types, valid = inputs()
    encode = jax.jit(model.encode, static_argnames="return_attention")
    own = encode(params, ids, types, valid, return_attention=True)
    heads = HeadMaps(maps=own.attentions, select=jnp.ones((3, 4), bool))
    again = encode(params, ids, types, valid, heads=heads, return_attention=True)
    np.testing.assert_array_equal(again.hidden, own.hidden)
    np.testing.assert_array_equal(again.hidden_states, own.hidden_states)
    np.testing.assert_array_equal(again.attentions, own.attentions)


@pytest.mark.parametrize("layer,head", [(0, 2), (2, 0)])
def test_one_replaced_head_matches_the_loop_reference(layer, head):
    model = Bert(CONFIG)
    params = perturbed_params(model)
    ids, types, valid = inputs()
    B, T = ids.shape
    maps = random_maps(valid[:, None, None, :], (3, B, 4, T, T), seed=layer * 10 + head)
    select = jnp.zeros((3, 4), bool).at[layer, head].set(True)
    out = model.encode(params, ids, types, valid, HeadMaps(maps, select), return_attention=True)
    last, states, probs = numpy_bert(
        CONFIG, params, ids, types, valid, replace=(layer, head, maps[layer][:, head])
    )
    np.testing.assert_allclose(out.hidden_states, states, atol=2e-5)
    np.testing.assert_allclose(out.attentions, probs, atol=1e-6)
    # The replacement changed the stream the later layers see.
    own = model.encode(params, ids, types, valid)
    assert float(jnp.abs(own.hidden - out.hidden).max()) > 1e-3


def test_encode_is_per_example_under_vmap_and_embeddings_are_per_token():
    model = Bert(CONFIG)
    params = perturbed_params(model)
    ids, types, valid = inputs()
    batched = model.encode(params, ids, types, valid).hidden

    def one(i, t, v):
        return model.encode(params, i[None], t[None], v[None]).hidden[0]

    np.testing.assert_allclose(jax.vmap(one)(ids, types, valid), batched, atol=1e-6)
    emb = model.embed(params, ids)
    np.testing.assert_array_equal(emb[1, 2], params["embeddings"]["word"][ids[1, 2]])


def test_gradient_wrt_embeddings_matches_finite_differences():
    model = Bert(CONFIG)
    params = perturbed_params(model)
    ids, types, valid = inputs(B=2, T=5)

    def logit(emb):
        hidden = model.encode_embedded(params, emb, types, valid).hidden
        return cls_logits(params, hidden)[:, 1].sum()

    emb = model.embed(params, ids).astype(jnp.float32)
    grad = jax.grad(logit)(emb)
    step, rng = 1e-2, np.random.default_rng(3)
    direction = jnp.asarray(rng.normal(size=emb.shape), jnp.float32)
    numeric = (logit(emb + step * direction) - logit(emb - step * direction)) / (2 * step)
    np.testing.assert_allclose(float(jnp.vdot(grad, direction)), float(numeric), rtol=2e-2)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_last_layer_at_the_first_rows_only_matches_the_loop_reference(pre_ln):
    # A [CLS] read-out computes the last layer at [CLS] alone: those rows equal the float64
    # loop's, with a replaced head of the last layer too; the rest of the output is zero.
    config = dataclasses.replace(CONFIG, pre_ln=pre_ln)
    model = Bert(config)
    params = perturbed_params(model, seed=3)
    ids, types, valid = inputs()
    B, T = ids.shape
    maps = random_maps(valid[:, None, None, :], (3, B, 4, T, T), seed=5)
    select = jnp.zeros((3, 4), bool).at[2, 1].set(True)
    encode = jax.jit(model.encode, static_argnames=("return_attention", "last_layer_rows"))
    for heads, replace in ((None, None), (HeadMaps(maps, select), (2, 1, maps[2][:, 1]))):
        last, states, _ = numpy_bert(config, params, ids, types, valid, replace=replace)
        for rows in (1, 2):
            out = encode(params, ids, types, valid, heads, last_layer_rows=rows)
            np.testing.assert_allclose(out.hidden[:, :rows], last[:, :rows], atol=2e-5)
            np.testing.assert_array_equal(out.hidden[:, rows:], 0.0)
            np.testing.assert_allclose(out.hidden_states[:-1], states[:-1], atol=2e-5)
    with pytest.raises(ValueError, match="exclude each other"):
        model.encode(params, ids, types, valid, return_attention=True, last_layer_rows=1)


def test_restart_with_the_last_layer_at_the_first_row_only():
    model = Bert(CONFIG)
    params = perturbed_params(model, seed=4)
    ids, types, valid = inputs()
    B, T = ids.shape
    full = model.encode(params, ids, types, valid, return_attention=True)
    given = random_maps(valid[:, None, None, :], (B, 4, T, T), seed=6)
    select = jnp.array([True, False, True, False])
    static = jax.jit(model.encode_from, static_argnums=3, static_argnames=("last_layer_rows",))
    for layer in range(3):
        reference = static(params, full.hidden_states[layer], valid, layer, given, select)
        out = static(params, full.hidden_states[layer], valid, layer, given, select,
                     last_layer_rows=1)
        np.testing.assert_allclose(out[:, 0], reference[:, 0], atol=1e-5)
        np.testing.assert_array_equal(out[:, 1:], 0.0)
        assert float(jnp.abs(reference - full.hidden).max()) > 1e-3  # the given maps count
