"""BertAttentionClassifier satisfies the model contract and composes the encoder and head."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.checks import check_model
from jaxattn.core.protocol import (
    Batch,
    HeadMaps,
    final_hidden,
    forward,
    has_affine_decoder,
    has_self_attention_seam,
)
from jaxattn.models.pretrained.bert import Bert, BertConfig
from jaxattn.models.pretrained.classifier import BertAttentionClassifier, BertClsClassifier
from jaxattn.models.pretrained.heads import additive_attention, additive_decode
from jaxattn.runtime.compile_stats import CompileCounter
from jaxattn.training.penalties import conicity, split_conicity

MODEL = BertAttentionClassifier(
    Bert(
        BertConfig(
            vocab_size=30,
            hidden_size=16,
            num_layers=2,
            num_heads=2,
            intermediate_size=20,
            max_position_embeddings=10,
        )
    ),
    task="multiclass",
    num_classes=3,
)


def batch():
    tokens = jnp.array([[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]], jnp.int32)
    valid = tokens > 0
    mask = valid & (tokens != 2) & (tokens != 3)
    return Batch(
        tokens=tokens,
        mask=mask,
        valid=valid,
        labels=jnp.array([0, 2]),
        weights=jnp.ones(2),
        index=jnp.arange(2),
    )


def test_contract_and_forward():
    assert check_model(MODEL) is MODEL
    assert has_self_attention_seam(MODEL) and has_affine_decoder(MODEL)
    b = batch()
    params = MODEL.init(jax.random.PRNGKey(0), b)
    logits, attn = jax.jit(forward, static_argnums=0)(MODEL, params, b)
    assert logits.shape == (2, 3)
    zeros = jnp.zeros_like(b.tokens)
    hidden = MODEL.bert.encode(params["bert"], b.tokens, zeros, b.valid).hidden
    expected = additive_attention(params["head"], hidden, b.mask)
    np.testing.assert_allclose(attn, expected, atol=1e-6)
    assert float(jnp.abs(jnp.where(b.mask, 0.0, attn)).max()) == 0.0
    np.testing.assert_allclose(logits, additive_decode(params["head"], hidden, expected), atol=1e-5)


def test_seam_through_the_contract():
    b = batch()
    params = MODEL.init(jax.random.PRNGKey(1), b)
    own = MODEL.self_attention(params, b)
    assert own.shape == (2, 2, 2, 6, 6)
    emb = MODEL.embed(params, b.tokens)
    plain = MODEL.encode_embedded(params, b, emb)
    same = MODEL.encode_embedded(params, b, emb, HeadMaps(own, jnp.ones((2, 2), bool)))
    np.testing.assert_array_equal(same.hidden, plain.hidden)
    # Every query attends to [CLS] alone in head (0, 1); init weights are small, so the change is.
    to_cls = jnp.zeros_like(own).at[..., 0].set(1.0)
    other = MODEL.encode_embedded(
        params, b, emb, HeadMaps(to_cls, jnp.zeros((2, 2), bool).at[0, 1].set(True))
    )
    assert float(jnp.abs(other.hidden - plain.hidden).max()) > 1e-6


class _WholeLastLayer(BertClsClassifier):
    """The [CLS] classifier with its last layer computed at every position."""

    last_layer_rows = None


def test_cls_head_computes_its_last_layer_at_cls_alone_with_the_same_logits_and_gradients():
    b = batch()
    short = BertClsClassifier(MODEL.bert, task="multiclass", num_classes=3)
    whole = _WholeLastLayer(MODEL.bert, task="multiclass", num_classes=3)
    params = jax.tree.map(lambda x: x + 0.1 * jnp.sin(jnp.arange(x.size).reshape(x.shape)),
                          short.init(jax.random.PRNGKey(2), b))
    to_cls = jnp.zeros((2, 2, 2, 6, 6)).at[..., 0].set(1.0)
    for heads in (None, HeadMaps(to_cls, jnp.zeros((2, 2), bool).at[1, 0].set(True))):

        @functools.partial(jax.jit, static_argnums=1)
        @functools.partial(jax.value_and_grad, has_aux=True)
        def score(p, model, heads=heads):
            enc = model.encode_embedded(p, b, model.embed(p, b.tokens), heads)
            return model.logits(p, enc)[:, 1].sum(), enc.hidden

        (value, hidden), grads = score(params, short)
        (value_all, hidden_all), grads_all = score(params, whole)
        np.testing.assert_allclose(value, value_all, rtol=1e-6)
        np.testing.assert_allclose(hidden[:, 0], hidden_all[:, 0], atol=1e-6)
        np.testing.assert_array_equal(hidden[:, 1:], 0.0)
        for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_all)):
            np.testing.assert_allclose(got, want, atol=1e-6)
    # Params as numpy arrays (as loaded from files), eagerly: the same logits.
    host = jax.tree.map(np.asarray, params)
    eager = short.logits(host, short.encode_embedded(host, b, short.embed(host, b.tokens)))
    np.testing.assert_allclose(eager, whole.logits(params, whole.encode_embedded(
        params, b, whole.embed(params, b.tokens))), atol=1e-5)
    # The last layer's query weights reach the output only through [CLS]'s query.
    assert float(jnp.abs(grads["bert"]["layers"]["query"]["kernel"][-1]).max()) > 1e-6
    # What reads every token's state gets the whole last layer, for both heads.
    full = whole.encode_embedded(params, b, whole.embed(params, b.tokens)).hidden
    np.testing.assert_allclose(final_hidden(short, params, b), full, atol=1e-6)
    want = float(conicity(full, b.mask)[np.asarray(b.weights) > 0].mean())
    assert want > 0.05
    np.testing.assert_allclose(split_conicity(short, params, [b]), want, rtol=1e-5)
    with CompileCounter() as counted:  # one program per model and shape, not one per call
        np.testing.assert_allclose(split_conicity(short, params, [b]), want, rtol=1e-5)
    assert counted.stats.programs == 0
