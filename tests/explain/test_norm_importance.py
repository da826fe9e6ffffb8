"""Norm-based importance against its definition from the decoder's own weights."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxattn.core.protocol import encode
from jaxattn.explain.norm_importance import norm_importance
from tests.helpers import toy_model


@pytest.mark.parametrize("task,classes", [("binary", 2), ("multiclass", 3)])
def test_norm_importance_matches_definition(task, classes):
    model, params, batch = toy_model(task=task, encoder="cnn", num_classes=classes)
    res = jax.device_get(norm_importance(model, params, batch))
    enc = encode(model, params, batch)
    attn = np.asarray(model.attend(params, enc))
    hidden = np.asarray(enc.hidden)
    w = np.asarray(params["decoder_out"]["kernel"])  # [H, C]
    b = np.asarray(params["decoder_out"]["bias"])  # [C]
    logits = np.asarray(model.decode(params, enc, attn))
    mask = np.asarray(batch.mask)
    for i in range(len(mask)):
        per_token = attn[i, :, None] * (hidden[i] @ w)  # [T, C]: a_t W h_t
        y = int(np.argmax(np.asarray(model.probs(logits[i : i + 1]))[0]))
        col = 0 if classes == 2 and task == "binary" else y
        want_norm = np.where(mask[i], np.linalg.norm(per_token, axis=-1), 0.0)
        np.testing.assert_allclose(res.norm[i], want_norm, rtol=1e-5, atol=1e-6)
        if task == "binary":  # a_t |w . h_t|
            np.testing.assert_allclose(res.norm[i], np.abs(per_token[:, 0]) * mask[i], atol=1e-6)
        np.testing.assert_allclose(res.signed[i], per_token[:, col] * mask[i], rtol=1e-5, atol=1e-6)
        if mask[i].any():  # the signed parts sum to the logit minus the bias
            np.testing.assert_allclose(res.signed[i].sum() + res.bias[i], logits[i, col],
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(res.bias[i], b[col], atol=1e-6)


def test_norm_importance_needs_an_affine_decoder():
    model, params, batch = toy_model(task="nli", encoder="cnn", num_classes=3)
    with pytest.raises(ValueError, match="affine decoder"):
        norm_importance(model, params, batch)
