"""The Transformer encoder: a PyTorch twin with the same weights, positions, padding, dropout and
its self-attention maps. The twin tests are skipped without the optional ``torch`` extra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.protocol import delete_position, delete_token
from jaxattn.data.batching import with_tokens
from jaxattn.models.transformer import TransformerEncoder
from tests.helpers import toy_batch, toy_model


def _perturbed(model, params, seed=1, scale=0.3):
    """``params`` plus noise, so LayerNorm scales, biases and positions are all non-trivial."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(tree, noisy)


def _transformer_model(task="binary", attention="additive", **kw):
    model, params, batch = toy_model(task, "transformer", attention, **kw)
    return model, _perturbed(model, params), batch


# ------------------------------------------------------------------------------------------------
# PyTorch twin


def _torch_encoder(torch, p, width, heads, ff_size):
    """Input projection, learned positions, norm_first TransformerEncoderLayer stack, final LN."""

    def t(x):
        return torch.tensor(np.asarray(x), dtype=torch.float32)

    n_layers = sum(k.startswith("blocks_") for k in p)
    layers = []
    for i in range(n_layers):
        b = p[f"blocks_{i}"]
        layer = torch.nn.TransformerEncoderLayer(
            d_model=width,
            nhead=heads,
            dim_feedforward=ff_size,
            dropout=0.0,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        a = b["attention"]
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(
                torch.cat([t(a[n]["kernel"]).T for n in ("query", "key", "value")])
            )
            layer.self_attn.in_proj_bias.copy_(
                torch.cat([t(a[n]["bias"]) for n in ("query", "key", "value")])
            )
            layer.self_attn.out_proj.weight.copy_(t(a["out"]["kernel"]).T)
            layer.self_attn.out_proj.bias.copy_(t(a["out"]["bias"]))
            layer.linear1.weight.copy_(t(b["ff_in"]["kernel"]).T)
            layer.linear1.bias.copy_(t(b["ff_in"]["bias"]))
            layer.linear2.weight.copy_(t(b["ff_out"]["kernel"]).T)
            layer.linear2.bias.copy_(t(b["ff_out"]["bias"]))
            for name in ("norm1", "norm2"):
                getattr(layer, name).weight.copy_(t(b[name]["scale"]))
                getattr(layer, name).bias.copy_(t(b[name]["bias"]))
        layers.append(layer.eval())
    final = torch.nn.LayerNorm(width)
    with torch.no_grad():
        final.weight.copy_(t(p["final_norm"]["scale"]))
        final.bias.copy_(t(p["final_norm"]["bias"]))
    proj_w, proj_b = t(p["input_projection"]["kernel"]), t(p["input_projection"]["bias"])
    positions = t(p["positions"])

    def encode(emb, nonpad):
        x = emb @ proj_w + proj_b + positions[: emb.shape[1]]
        for layer in layers:
            x = layer(x, src_key_padding_mask=nonpad == 0)
        return final(x) * nonpad[..., None]

    return encode


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_model_matches_pytorch_twin_hidden_logits_and_input_gradients(attention):
    torch = pytest.importorskip("torch")

    def t(x):
        return torch.tensor(np.asarray(x), dtype=torch.float32)

    model, params, batch = _transformer_model(attention=attention)
    net = model.network
    emb = model.embed(params, batch.tokens)

    def jax_logits(e):
        enc = model.encode_embedded(params, batch, e)
        return model.decode(params, enc, model.attend(params, enc)), enc.hidden

    (logits, hidden) = jax_logits(emb)
    grad = jax.grad(lambda e: jax_logits(e)[0][:, 0].sum())(emb)

    keep = np.asarray(batch.valid).any(axis=1)  # PyTorch gives NaN for rows with no valid key
    nonpad = t(batch.valid)[keep]
    real = t(batch.mask)[keep]
    t_emb = t(emb)[keep].requires_grad_(True)
    s = net.settings
    encode = _torch_encoder(torch, params["text_encoder"], s.width, s.heads, s.ff_size)
    t_hidden = encode(t_emb, nonpad)
    att = params["attention"]
    if attention == "additive":
        scores = (
            torch.tanh(t_hidden @ t(att["W1"]["kernel"]) + t(att["W1"]["bias"]))
            @ t(att["w2"]["kernel"])
        )[..., 0]
    else:
        scores = (t_hidden @ t(att["w"]["kernel"]))[..., 0] / t_hidden.shape[-1] ** 0.5
    t_attn = torch.softmax(scores.masked_fill(real == 0, float("-inf")), dim=-1)
    context = (t_attn[..., None] * t_hidden).sum(1)
    dec = params["decoder_out"]
    t_logits = context @ t(dec["kernel"]) + t(dec["bias"])
    t_logits[:, 0].sum().backward()

    valid = np.asarray(batch.valid)[keep]
    np.testing.assert_allclose(
        np.asarray(hidden)[keep][valid], t_hidden.detach().numpy()[valid], rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(logits)[keep], t_logits.detach().numpy(), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(grad)[keep][valid], t_emb.grad.numpy()[valid], rtol=1e-4, atol=1e-4
    )
    # The gradient is not trivially small: the comparison means something.
    assert np.abs(np.asarray(grad)[keep][valid]).max() > 1e-2


# ------------------------------------------------------------------------------------------------
# Contract


def test_padding_does_not_change_hidden_states_and_padding_rows_stay_finite():
    model, params, batch = _transformer_model()
    wider = with_tokens(batch, np.pad(batch.tokens, ((0, 0), (0, 9))))
    h1 = np.asarray(model.encode(params, batch).hidden)
    h2 = np.asarray(model.encode(params, wider).hidden)
    np.testing.assert_allclose(h1, h2[:, : h1.shape[1]], rtol=1e-5, atol=1e-5)
    assert np.all(h2[:, h1.shape[1] :] == 0.0)
    # The last row of the toy batch is all padding: finite outputs and gradients, no NaN.
    assert not np.asarray(batch.valid)[-1].any()
    logits, _ = model.forward(params, batch)
    assert np.all(np.isfinite(np.asarray(logits)))
    grads = jax.grad(lambda p: model.forward(p, batch)[0].sum())(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))


def test_deleting_a_feature_row_is_encoding_the_text_without_that_token():
    """Positions are assigned in contextualize, so leave-one-out's row deletion is exact."""
    model, params, batch = _transformer_model()
    features = model.featurize(params, model.embed(params, batch.tokens))
    position = jnp.int32(2)
    shortened = delete_token(batch, position)
    by_rows = model.encode_features(params, shortened, delete_position(features, position))
    direct = model.encode(params, shortened)
    np.testing.assert_allclose(
        np.asarray(by_rows.hidden), np.asarray(direct.hidden), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("task", ["binary", "nli"])
def test_self_attention_maps(task):
    model, params, batch = _transformer_model(task=task, num_classes=3 if task == "nli" else 2)
    maps = np.asarray(model.self_attention(params, batch))
    b, t = batch.tokens.shape
    assert maps.shape == (model.network.settings.layers, b, model.network.settings.heads, t, t)
    valid = np.asarray(batch.valid)
    # Each query's weights sum to 1 over its row's valid keys and are exactly 0 on padding keys.
    sums = maps.sum(axis=-1)
    rows = valid.any(axis=1)
    np.testing.assert_allclose(sums[:, rows], 1.0, rtol=1e-5)
    assert np.all(sums[:, ~rows] == 0.0)
    assert np.all(np.where(valid[None, :, None, None, :], 0.0, maps) == 0.0)


def test_models_without_self_attention_give_no_layers():
    model, params, batch = toy_model("binary", "bilstm")
    b, t = batch.tokens.shape
    assert model.self_attention(params, batch).shape == (0, b, 0, t, t)


def test_dropout_is_real_with_a_dropout_rng_and_off_without_one():
    batch = toy_batch()
    x = jax.random.normal(jax.random.key(0), batch.tokens.shape + (6,))
    plain = TransformerEncoder(width=8, layers=2, heads=2, ff_size=16)
    dropping = TransformerEncoder(width=8, layers=2, heads=2, ff_size=16, dropout=0.5)
    params = plain.init(jax.random.key(1), x, batch.valid)
    reference, _ = plain.apply(params, x, batch.valid)
    # No "dropout" rng: deterministic, equal to the rate-0 encoder.
    quiet, _ = dropping.apply(params, x, batch.valid)
    np.testing.assert_array_equal(np.asarray(quiet), np.asarray(reference))
    noisy = [
        np.asarray(dropping.apply(params, x, batch.valid, rngs={"dropout": jax.random.key(s)})[0])
        for s in (2, 3)
    ]
    assert not np.allclose(noisy[0], reference) and not np.allclose(noisy[0], noisy[1])
    assert np.all(np.isfinite(noisy[0]))


def test_batches_wider_than_the_position_table_fail_clearly():
    batch = toy_batch()
    x = jnp.zeros(batch.tokens.shape + (4,))
    encoder = TransformerEncoder(width=8, layers=1, heads=2, ff_size=8, max_positions=4)
    with pytest.raises(ValueError, match="max_positions"):
        encoder.init(jax.random.key(0), x, batch.valid)
