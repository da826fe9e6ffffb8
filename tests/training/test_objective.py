"""The training objective: J&W's class weight, the loss of each task, and the attention each
source gives the decoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.errors import ConfigError
from jaxattn.core.protocol import encode
from jaxattn.models.pretrained.classifier import BertClsClassifier
from jaxattn.training.objective import (
    AttentionSource,
    attention_for,
    batch_loss,
    positive_class_weight,
    source_logits,
)
from tests.helpers import toy_model
from tests.models.pretrained.test_classifier import MODEL
from tests.models.pretrained.test_classifier import batch as classifier_batch


def test_positive_class_weight():
    assert positive_class_weight(np.array([1, 0, 0, 0])) == 3.0


def test_the_logged_loss_is_a_mean_per_instance_for_every_task():
    """NLI / QA losses are batch means in the objective but per-instance sums in the log."""
    model, params, batch = toy_model("nli", "average")
    logits = jnp.zeros((batch.tokens.shape[0], 2))
    objective, logged = batch_loss(model, logits, batch, jnp.float32(1.0))
    real = float(np.asarray(batch.weights).sum())
    np.testing.assert_allclose(float(logged), float(objective) * real, rtol=1e-6)
    np.testing.assert_allclose(float(objective), np.log(2.0), rtol=1e-6)


def test_each_source_gives_its_attention_and_a_cls_model_refuses_all_but_its_own():
    model, params, batch = toy_model("binary", "average")
    enc = encode(model, params, batch)
    learned = attention_for(model, params, enc, batch, AttentionSource(), None)
    np.testing.assert_allclose(learned, model.attend(params, enc))
    uniform = np.asarray(attention_for(model, params, enc, batch, AttentionSource("uniform"), None))
    mask = np.asarray(enc.mask)
    np.testing.assert_allclose(uniform, mask / np.maximum(mask.sum(axis=1, keepdims=True), 1),
                               atol=1e-7)  # a row without real tokens gets no attention
    imposed = attention_for(model, params, enc, batch, AttentionSource("imposed", model), params)
    np.testing.assert_allclose(imposed, learned, atol=1e-7)
    logits, attn = source_logits(model, params, enc, batch, AttentionSource("uniform"), None)
    np.testing.assert_allclose(logits, model.decode(params, enc, uniform), atol=1e-6)

    cls = BertClsClassifier(MODEL.bert, task="multiclass", num_classes=3)
    cls_batch = classifier_batch()
    cls_params = cls.init(jax.random.key(0), cls_batch)
    cls_enc = encode(cls, cls_params, cls_batch)
    logits, attn = source_logits(cls, cls_params, cls_enc, cls_batch, AttentionSource(), None)
    assert attn is None and logits.shape[0] == cls_batch.tokens.shape[0]
    with pytest.raises(ConfigError, match="train.attention = 'uniform' needs the pooling seam"):
        source_logits(cls, cls_params, cls_enc, cls_batch, AttentionSource("uniform"), None)
