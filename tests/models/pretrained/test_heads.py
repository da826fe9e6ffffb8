"""The classification heads over BERT's hidden states against numpy: the pooler and linear layer
of ``BertForSequenceClassification``, and Jain & Wallace's additive attention, whose decoder is
affine in the attention."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.models.pretrained.bert import Bert
from jaxattn.models.pretrained.heads import (
    additive_attention,
    additive_decode,
    cls_logits,
    init_additive_head,
)
from tests.models.pretrained.test_bert import CONFIG, perturbed_params, random_maps


def test_cls_head_and_pooler():
    model = Bert(CONFIG)
    params = perturbed_params(model)
    hidden = jax.random.normal(jax.random.PRNGKey(5), (2, 4, 24))
    p = jax.tree.map(np.asarray, params)
    pooled = np.tanh(np.asarray(hidden)[:, 0] @ p["pooler"]["kernel"] + p["pooler"]["bias"])
    np.testing.assert_allclose(model.pool(params, hidden), pooled, atol=1e-6)
    logits = pooled @ p["classifier"]["kernel"] + p["classifier"]["bias"]
    np.testing.assert_allclose(cls_logits(params, hidden), logits, atol=1e-5)


def test_additive_head():
    head = init_additive_head(jax.random.PRNGKey(0), 24, 3)
    assert head["W"]["kernel"].shape == (24, 12)
    hidden = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 24))
    mask = jnp.array([[False, True, True, True, False], [False, True, False, False, False]])
    attn = additive_attention(head, hidden, mask)
    h = jax.tree.map(np.asarray, head)
    scores = np.tanh(np.asarray(hidden) @ h["W"]["kernel"] + h["W"]["bias"]) @ h["v"]
    expected = np.where(np.asarray(mask), np.exp(scores), 0.0)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(attn, expected, atol=1e-6)
    np.testing.assert_allclose(
        additive_decode(head, hidden, attn),
        np.einsum("bt,bte->be", expected, np.asarray(hidden)) @ h["out"]["kernel"]
        + h["out"]["bias"],
        atol=1e-5,
    )
    other = random_maps(mask, (2, 5), 0)
    mixed = additive_decode(head, hidden, 0.3 * attn + 0.7 * other)
    np.testing.assert_allclose(
        mixed,
        0.3 * additive_decode(head, hidden, attn) + 0.7 * additive_decode(head, hidden, other),
        atol=1e-5,
    )
