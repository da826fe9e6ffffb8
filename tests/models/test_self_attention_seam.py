"""The Transformer's self-attention seam: encoding with given maps for chosen (layer, head) pairs.

Checked against the model's own forward (bit for bit), a NumPy re-implementation of the encoder
with one head's probabilities substituted, separate calls (for a vmap over maps) and finite
differences (for gradients w.r.t. the maps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.checks import check_model
from jaxattn.core.protocol import HeadMaps, capabilities, has_self_attention_seam
from tests.helpers import perturbed, toy_model


@pytest.fixture(scope="module")
def setup():
    model, params, batch = toy_model("binary", "transformer")
    return model, perturbed(params), batch


def _select(layers, heads, pairs):
    select = np.zeros((layers, heads), bool)
    for layer, head in pairs:
        select[layer, head] = True
    return jnp.asarray(select)


def _random_maps(key, shape, valid):
    """<float32>[L, B, H, T, T] random distributions over each row's valid keys."""
    scores = jax.random.normal(key, shape)
    keys = valid[None, :, None, None, :]
    weights = jnp.where(keys, jnp.exp(scores), 0.0)
    return weights / jnp.maximum(weights.sum(-1, keepdims=True), 1e-30)


def _logits(model, params, batch, heads=None):
    return model.logits(params, model.encode(params, batch, heads=heads))


# ------------------------------------------------------------------------------------------------
# NumPy re-implementation of the passage encoder (float64, one layer and one head at a time)


def _layer_norm(x, p, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def _numpy_hidden(params, batch, heads, substitute=None):
    """hidden [B, T, W] of the Transformer passage encoder with ``heads`` heads per layer;
    ``substitute`` maps (layer, head) to the probabilities [B, T, T] that head uses instead of
    its own."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    enc = p["text_encoder"]
    tokens, valid = np.asarray(batch.tokens), np.asarray(batch.valid)
    b, t = tokens.shape
    x = _dense(p["embedder"]["embedding"][tokens], enc["input_projection"]) + enc["positions"][:t]
    layer = 0
    while f"blocks_{layer}" in enc:
        block = enc[f"blocks_{layer}"]
        attn = block["attention"]
        y = _layer_norm(x, block["norm1"])
        q, k, v = (_dense(y, attn[name]) for name in ("query", "key", "value"))
        size = q.shape[-1] // heads
        out = np.zeros_like(q)
        for h in range(heads):
            cols = slice(h * size, (h + 1) * size)
            for row in range(b):
                if substitute is not None and (layer, h) in substitute:
                    probs = np.asarray(substitute[(layer, h)][row], np.float64)
                else:
                    scores = q[row, :, cols] @ k[row, :, cols].T / np.sqrt(size)
                    probs = np.zeros((t, t))
                    if valid[row].any():
                        e = np.exp(scores - scores[:, valid[row]].max(-1, keepdims=True))
                        e = np.where(valid[row][None], e, 0.0)
                        probs = e / e.sum(-1, keepdims=True)
                out[row, :, cols] = probs @ v[row, :, cols]
        x = x + _dense(out, attn["out"])
        y = _layer_norm(x, block["norm2"])
        x = x + _dense(np.maximum(_dense(y, block["ff_in"]), 0.0), block["ff_out"])
        layer += 1
    return _layer_norm(x, enc["final_norm"]) * valid[..., None]


# ------------------------------------------------------------------------------------------------


def test_the_transformer_model_offers_the_seam_and_others_do_not(setup):
    model, _, _ = setup
    assert has_self_attention_seam(model)
    assert "self_attention_seam" in capabilities(check_model(model))
    bilstm, params, batch = toy_model("binary", "bilstm")
    assert not has_self_attention_seam(bilstm)
    maps = jnp.zeros((1,) + batch.tokens.shape[:1] + (1,) + batch.tokens.shape[1:2] * 2)
    with pytest.raises(TypeError, match="needs the Transformer encoder"):
        bilstm.encode(params, batch, heads=HeadMaps(maps, jnp.ones((1, 1), bool)))


def test_maps_of_the_wrong_shape_are_refused(setup):
    model, params, batch = setup
    maps = model.self_attention(params, batch)
    with pytest.raises(ValueError, match=r"expected maps .* \[L, B, heads, T, T\]"):
        model.encode(params, batch, heads=HeadMaps(maps[:1], jnp.ones((1, 2), bool)))


def test_every_head_given_its_own_maps_is_the_forward_bit_for_bit(setup):
    model, params, batch = setup
    maps = model.self_attention(params, batch)
    every = jnp.ones((maps.shape[0], maps.shape[2]), bool)
    plain = model.encode(params, batch)
    given = model.encode(params, batch, heads=HeadMaps(maps, every))
    np.testing.assert_array_equal(np.asarray(given.hidden), np.asarray(plain.hidden))
    np.testing.assert_array_equal(
        np.asarray(model.logits(params, given)), np.asarray(model.forward(params, batch)[0])
    )
    # No head selected: the maps are not read at all.
    ignored = HeadMaps(jnp.full_like(maps, jnp.nan), jnp.zeros_like(every))
    np.testing.assert_array_equal(
        np.asarray(model.encode(params, batch, heads=ignored).hidden), np.asarray(plain.hidden)
    )


def test_the_numpy_encoder_is_the_model(setup):
    """The brute-force reference below is right before it judges the seam."""
    model, params, batch = setup
    np.testing.assert_allclose(
        np.asarray(model.encode(params, batch).hidden), _numpy_hidden(params, batch, model.network.settings.heads),
        rtol=1e-4, atol=1e-5,
    )


@pytest.mark.parametrize("pair", [(0, 1), (1, 0)])
def test_one_head_replaced_equals_the_brute_force_encoder(setup, pair):
    model, params, batch = setup
    own = model.self_attention(params, batch)
    maps = _random_maps(jax.random.key(3), own.shape, jnp.asarray(batch.valid))
    select = _select(own.shape[0], own.shape[2], [pair])
    got = np.asarray(model.encode(params, batch, heads=HeadMaps(maps, select)).hidden)
    want = _numpy_hidden(params, batch, own.shape[2], {pair: np.asarray(maps[pair[0], :, pair[1]])})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The replacement changed the encoding (the test can fail).
    assert np.abs(got - np.asarray(model.encode(params, batch).hidden)).max() > 1e-2
    # Later layers compute their own maps on the changed stream: layer 1's maps moved.
    if pair[0] == 0:
        heads = HeadMaps(maps, select)
        assert not np.allclose(np.asarray(own[1]), _maps_after(model, params, batch, heads)[1])


def _maps_after(model, params, batch, heads):
    """The maps each layer uses when encoding with ``heads`` (read from the sown weights)."""
    from jaxattn.models.network import AttentionNetwork

    features = model.featurize(params, model.embed(params, batch.tokens))
    _, state = model.network.apply(
        {"params": params}, features, batch.mask, batch.valid, None, None, None, heads,
        method=AttentionNetwork.encode_features, mutable=["intermediates"],
    )
    return np.stack(state["intermediates"]["text_encoder"]["self_attention"])


def test_a_vmapped_permutation_of_one_heads_maps_equals_separate_calls(setup):
    model, params, batch = setup
    own = model.self_attention(params, batch)
    layer, head, count = 1, 0, 4
    select = _select(own.shape[0], own.shape[2], [(layer, head)])
    valid = np.asarray(batch.valid)
    rng = np.random.default_rng(0)
    stacked = []
    for _ in range(count):  # permute each row's valid keys of that head's maps
        maps = np.array(own)
        for row in range(valid.shape[0]):
            keys = np.flatnonzero(valid[row])
            maps[layer, row, head][:, keys] = maps[layer, row, head][:, rng.permutation(keys)]
        stacked.append(maps)
    stacked = jnp.asarray(np.stack(stacked))  # [P, L, B, H, T, T]

    batched = jax.jit(
        jax.vmap(lambda m: _logits(model, params, batch, HeadMaps(m, select)))
    )(stacked)
    separate = np.stack([np.asarray(_logits(model, params, batch, HeadMaps(m, select)))
                         for m in stacked])
    np.testing.assert_allclose(np.asarray(batched), separate, rtol=1e-5, atol=1e-6)
    assert np.ptp(separate[:, : int(valid.any(1).sum())], axis=0).max() > 1e-4


def test_gradients_wrt_the_maps_match_finite_differences(setup):
    model, params, batch = setup
    own = model.self_attention(params, batch)
    select = _select(own.shape[0], own.shape[2], [(0, 1), (1, 0)])

    def total(maps):
        return _logits(model, params, batch, HeadMaps(maps, select)).sum()

    grad = np.asarray(jax.grad(total)(own), np.float64)
    sel = np.asarray(select)[:, None, :, None, None]
    assert np.all(grad[~np.broadcast_to(sel, grad.shape)] == 0)  # unselected heads: not read
    assert np.abs(grad).max() > 1e-3
    eps = 1e-2
    for seed in range(3):
        direction = np.asarray(jax.random.normal(jax.random.key(seed), own.shape)) * sel
        direction = jnp.asarray(direction / np.linalg.norm(direction), jnp.float32)
        numeric = (float(total(own + eps * direction)) - float(total(own - eps * direction))) / (
            2 * eps
        )
        analytic = float((grad * np.asarray(direction, np.float64)).sum())
        np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3)
