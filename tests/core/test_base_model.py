"""A model with the base contract only: a classifier reading its first-position ([CLS]-style)
vector, with no pooling attention. Gradient, leave-one-out and integrated gradients run on it
through ``logits`` (checked against finite differences, a brute-force loop and completeness);
the stages that need the pooling attention are skipped with the reason said."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxattn
from jaxattn.core import (
    AttentionModel,
    BaseModel,
    Batch,
    Encoded,
    capabilities,
    check_model,
    delete_token,
    forward,
    has_pooling_attention,
    output_distribution,
    predict_logits,
)
from jaxattn.core.checks import ModelOutputError
from jaxattn.core.metrics import tvd
from jaxattn.data.batching import make_batch
from jaxattn.explain import importance
from jaxattn.studies.jain_wallace import stages
from jaxattn.studies.jain_wallace.analyze import applicable_stages, skipped_stages
from jaxattn.studies.runner import compute_stage
from tests.helpers import synthetic_test_batch

NUM_CLASSES = 3


class _Net(nn.Module):
    """Token states mixed with their valid mean; the first position's state is read out."""

    vocab_size: int
    width: int = 6
    classes: int = NUM_CLASSES

    def setup(self):
        self.embedder = nn.Embed(self.vocab_size, self.width)
        self.token = nn.Dense(self.width)
        self.mix = nn.Dense(self.width)
        self.out = nn.Dense(self.classes)

    def embed(self, tokens):
        return self.embedder(tokens)

    def encode(self, embedded, valid, mask):
        v = valid[..., None].astype(embedded.dtype)
        states = jnp.tanh(self.token(embedded)) * v
        context = states.sum(axis=1, keepdims=True) / jnp.maximum(v.sum(axis=1, keepdims=True), 1)
        return Encoded(hidden=jnp.tanh(self.mix(states + context)) * v, mask=mask)

    def read_out(self, hidden):
        return self.out(hidden[:, 0])  # the first position (SOS), as a [CLS] vector

    def __call__(self, tokens, valid, mask):
        return self.read_out(self.encode(self.embed(tokens), valid, mask).hidden)


@dataclasses.dataclass(frozen=True)
class FirstTokenClassifier:
    """The base contract only: no attend / decode, no fast paths."""

    vocab_size: int
    task: str = "multiclass"
    classes: int = NUM_CLASSES

    @property
    def net(self) -> _Net:
        return _Net(self.vocab_size, classes=self.classes)

    def init(self, rng, batch: Batch):
        return self.net.init(rng, batch.tokens, batch.valid, batch.mask)["params"]

    def embed(self, params, tokens):
        return self.net.apply({"params": params}, tokens, method=_Net.embed)

    def encode_embedded(self, params, batch: Batch, embedded):
        return self.net.apply(
            {"params": params}, embedded, batch.valid, batch.mask, method=_Net.encode
        )

    def logits(self, params, enc: Encoded):
        return self.net.apply({"params": params}, enc.hidden, method=_Net.read_out)

    def probs(self, logits):
        return output_distribution(logits)


@pytest.fixture(scope="module")
def setup():
    vocab, split, batch = synthetic_test_batch(6, seed=0)
    model = check_model(FirstTokenClassifier(len(vocab)))
    params = model.init(jax.random.key(0), batch)
    params = jax.tree_util.tree_map(lambda x: 2.0 * x, params)  # outputs far from uniform
    return model, params, batch, split


def _probs(model, params, batch, embedded=None):
    embedded = model.embed(params, batch.tokens) if embedded is None else embedded
    return model.probs(model.logits(params, model.encode_embedded(params, batch, embedded)))


def test_it_satisfies_the_base_and_offers_no_seam(setup):
    model, params, batch, _ = setup
    assert isinstance(model, BaseModel) and not isinstance(model, AttentionModel)
    assert not has_pooling_attention(model) and capabilities(model) == ()
    with pytest.raises(TypeError, match="lacks pooling .*offers: the base only"):
        check_model(model, needs=("pooling",))
    with pytest.raises(TypeError, match="forward needs the pooling seam"):
        forward(model, params, batch)
    assert predict_logits(model, params, batch).shape == (batch.tokens.shape[0], NUM_CLASSES)


def test_check_model_refuses_half_a_pooling_seam():
    @dataclasses.dataclass(frozen=True)
    class HalfPooling(FirstTokenClassifier):
        def attend(self, params, enc):
            return enc.mask.astype(jnp.float32)

    with pytest.raises(TypeError, match="offers attend but not decode"):
        check_model(HalfPooling(10))


def test_gradient_times_input_matches_finite_differences(setup):
    model, params, batch, _ = setup
    below = np.asarray(importance.gradient_times_input(model, params, batch, hold_attention=True))
    through = np.asarray(importance.gradient_times_input(model, params, batch, False))
    np.testing.assert_array_equal(below, through)  # no attention to hold
    embedded = model.embed(params, batch.tokens)
    target = np.asarray(importance.predicted_class(model, params, batch))
    mask = np.asarray(batch.mask)

    def prob(e):
        p = np.asarray(_probs(model, params, batch, e), np.float64)
        return np.take_along_axis(p, target[:, None], 1)[:, 0]

    eps = 1e-2
    want = np.zeros_like(below)
    for t in range(batch.tokens.shape[1]):
        scale = np.zeros(embedded.shape[:2], np.float32)
        scale[:, t] = 1.0
        step = jnp.asarray(scale)[..., None] * embedded
        want[:, t] = (prob(embedded + eps * step) - prob(embedded - eps * step)) / (2 * eps)
    want = np.where(mask, want, 0.0)
    np.testing.assert_allclose(below, want, rtol=2e-2, atol=2e-4)
    assert np.abs(below[mask]).max() > 1e-3 and np.all(below[~mask] == 0)


def test_leave_one_out_equals_a_brute_force_loop(setup):
    model, params, batch, _ = setup
    got = np.asarray(importance.leave_one_out(model, params, batch, chunk=2))
    probs = np.asarray(_probs(model, params, batch))
    want = np.zeros_like(got)
    for t in range(batch.tokens.shape[1]):
        shorter = delete_token(batch, t)
        want[:, t] = np.asarray(tvd(np.asarray(_probs(model, params, shorter)), probs))
    want = np.where(np.asarray(batch.mask), want, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got[np.asarray(batch.mask)].max() > 1e-3


def test_integrated_gradients_are_complete(setup):
    """The real tokens' attributions sum to p(input) - p(real embeddings zeroed)."""
    model, params, batch, _ = setup
    got = np.asarray(importance.integrated_gradients(model, params, batch, steps=64, chunk=16))
    target = np.asarray(importance.predicted_class(model, params, batch))
    embedded = model.embed(params, batch.tokens)
    baseline = jnp.where(batch.mask[..., None], 0.0, embedded)

    def prob(e):
        return np.take_along_axis(np.asarray(_probs(model, params, batch, e)), target[:, None],
                                  1)[:, 0]

    rows = np.asarray(batch.mask).any(axis=1)
    delta = (prob(embedded) - prob(baseline))[rows]
    np.testing.assert_allclose(got.sum(axis=1)[rows], delta, rtol=1e-2, atol=1e-4)
    assert np.abs(delta).max() > 1e-2


def test_the_stages_it_can_run_run_and_the_others_say_why_not(setup):
    model, params, batch, split = setup
    indices = np.arange(len(split))
    skipped = skipped_stages(model, params, split, indices)
    assert "attention" not in skipped  # its output distribution is every model's
    for name in ("perm", "adv", "erasure"):
        assert "'pooling'" in skipped[name] and "FirstTokenClassifier" in skipped[name]
    assert "'affine_decoder'" in skipped["norm"] and "self_attention" in skipped["self_attn"]
    assert "'self_attention_seam'" in skipped["summaries"] and "eraser" not in skipped
    assert "every word is a single token" in skipped["loo_words"]
    runnable = applicable_stages(model, params, split, indices)
    assert {"grad", "loo", "ig", "eraser"} <= set(runnable)  # ERASER only deletes tokens
    assert not {"perm", "adv", "erasure", "norm", "summaries"} & set(runnable)

    opts = stages.AnalysisOptions(buckets=(batch.tokens.shape[1],), ig_steps=8, ig_chunk=4)
    expected = {
        "grad": importance.gradient_importance(model, params, batch),
        "loo": importance.leave_one_out(model, params, batch, chunk=opts.loo_chunk),
        "ig": importance.integrated_gradients_importance(model, params, batch, 8, 4),
    }
    real = np.asarray(batch.index) >= 0
    for name, want in expected.items():
        arrays, _ = compute_stage(stages.STAGE_SPECS[name], model, params, split, indices, opts,
                                  progress=False)
        got = arrays[name]
        want = np.asarray(want)[real][:, : got.shape[1]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert np.all(np.isfinite(got)) and got.max() > 0


def test_analyze_reports_it_with_the_pooling_tests_not_applicable(tmp_path):
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=40))
    model = FirstTokenClassifier(len(data.vocab), classes=len(data.dataset.label_names))
    params = model.init(jax.random.key(0), make_batch(data.splits["test"], range(2)))
    page = jaxattn.analyze(model, params, data, out=tmp_path / "analysis", limit=4,
                           only={"grad", "loo"}, progress=False).read_text()
    assert "Verdict" in page and "not applicable" in page
    assert "(no pooling attention) (test split)</h1>" in page  # names no attention it lacks
    assert (tmp_path / "analysis" / "grad.npz").exists()
    assert not (tmp_path / "analysis" / "perm.npz").exists()
    three = FirstTokenClassifier(len(data.vocab), classes=3)  # the data has 2 classes
    with pytest.raises(ModelOutputError, match="probs gives 3 classes, the data has 2"):
        jaxattn.analyze(three, three.init(jax.random.key(0), make_batch(data.splits["test"],
                                                                          range(2))),
                        data, out=tmp_path / "other", limit=4, only={"grad"}, progress=False)
