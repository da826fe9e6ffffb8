"""Features gathered from a vocabulary table give every stage the original model's results."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxattn.core.checks import check_model
from jaxattn.core.protocol import forward
from jaxattn.models.vocab_features import VocabularyFeatures, with_vocabulary_features
from jaxattn.studies.jain_wallace import stages
from jaxattn.studies.jain_wallace.analyze import analysis_options
from tests.helpers import toy_model

OPTS = analysis_options(dict(num_permutations=3, num_adversaries=2, adv_steps=4, ig_steps=4,
                             ig_chunk=2, loo_chunk=2))
VOCAB = 30


@pytest.mark.parametrize("task,encoder", [("binary", "bilstm"), ("binary", "average"),
                                          ("binary", "transformer"), ("qa", "bilstm")])
def test_every_stage_matches_the_original_model(task, encoder):
    model, params, batch = toy_model(task, encoder, vocab_size=VOCAB, num_classes=3)
    fast, fast_params = with_vocabulary_features(model, params, VOCAB)
    assert isinstance(check_model(fast), VocabularyFeatures)
    # The table is the input projection of every word: f(e_v) - f(0) and f(0).
    emb = model.embed(params, np.arange(VOCAB, dtype=np.int32)[None])
    want = np.asarray(model.featurize(params, emb)[0]).reshape(VOCAB, -1)
    got = np.asarray(fast_params["linear"]) + np.asarray(fast_params["offset"])[None]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    names = ["attention", "grad", "loo", "ig", "perm", "adv"]
    for name in names:
        compute = stages.STAGE_SPECS[name].compute
        slow_out = jax.device_get(compute(model, params, batch, OPTS))
        fast_out = jax.device_get(compute(fast, fast_params, batch, OPTS))
        assert slow_out.keys() == fast_out.keys()
        for key in slow_out:
            np.testing.assert_allclose(np.asarray(fast_out[key], np.float64),
                                       np.asarray(slow_out[key], np.float64),
                                       rtol=2e-4, atol=2e-5, err_msg=f"{name}.{key}")


def test_forward_is_the_same_and_self_attention_passes_through():
    model, params, batch = toy_model("binary", "transformer", vocab_size=VOCAB)
    fast, fast_params = with_vocabulary_features(model, params, VOCAB)
    for a, b in zip(forward(model, params, batch), forward(fast, fast_params, batch)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fast.self_attention(fast_params, batch)),
                               np.asarray(model.self_attention(params, batch)), atol=1e-6)


def test_a_table_too_large_or_a_model_without_features_is_left_alone(monkeypatch):
    from jaxattn.models import vocab_features

    model, params, _ = toy_model("binary", "bilstm", vocab_size=VOCAB)
    monkeypatch.setattr(vocab_features, "MAX_TABLE_BYTES", 10)
    assert with_vocabulary_features(model, params, VOCAB) == (model, params)
