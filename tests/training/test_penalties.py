"""Conicity and the deception penalty: definitions, gradients, and a short deceptive training run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from jaxattn.config import ConfigError, load_config
from jaxattn.data.generators import make_synthetic
from jaxattn.data.prepare import prepare
from jaxattn.runs.run import load_run, train_run
from jaxattn.training.deception import deception_scores
from jaxattn.training.penalties import conicity, deception_penalty, penalty_for


def _numpy_conicity(hidden, mask):
    out = []
    for h, m in zip(hidden, mask):
        real = h[m]
        mean = real.mean(axis=0)
        cos = real @ mean / (np.linalg.norm(real, axis=1) * np.linalg.norm(mean))
        out.append(np.abs(cos).mean())
    return np.asarray(out)


def _hidden_and_mask(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((4, 7), bool)
    for r, n in enumerate((7, 3, 5, 1)):
        mask[r, :n] = True
    hidden = rng.normal(size=(4, 7, 5)) * mask[..., None]
    return hidden, mask


def test_conicity_equals_a_numpy_reference():
    hidden, mask = _hidden_and_mask()
    got = conicity(jnp.asarray(hidden, jnp.float32), jnp.asarray(mask))
    np.testing.assert_allclose(got, _numpy_conicity(hidden, mask), rtol=1e-5)
    assert got[3] == pytest.approx(1.0)  # one token: cos(h, h) = 1
    # States in a narrow cone have conicity near 1; opposite pairs cancel in the mean.
    cone = np.ones((1, 4, 5)) + 0.01 * np.random.default_rng(1).normal(size=(1, 4, 5))
    assert float(conicity(jnp.asarray(cone), jnp.ones((1, 4), bool))[0]) > 0.99
    # No real token: 0, not NaN.
    assert float(conicity(jnp.zeros((1, 3, 5)), jnp.zeros((1, 3), bool))[0]) == 0.0


def test_conicity_gradient_matches_finite_differences():
    hidden, mask = _hidden_and_mask(seed=2)
    with enable_x64():
        h = jnp.asarray(hidden, jnp.float64)
        m = jnp.asarray(mask)
        weights = jnp.asarray([1.0, 2.0, -1.0, 0.5])

        def f(x):
            return jnp.sum(conicity(x, m) * weights)

        grad = np.asarray(jax.grad(f)(h))
        eps = 1e-6
        numeric = np.zeros_like(hidden)
        for idx in np.ndindex(hidden.shape):
            step = np.zeros_like(hidden)
            step[idx] = eps
            numeric[idx] = (float(f(h + step)) - float(f(h - step))) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=1e-6)
    assert np.all(grad[~mask] == 0.0)  # padding does not enter
    assert np.isfinite(grad).all()


def test_deception_penalty_equals_its_definition():
    attn = jnp.asarray([[0.5, 0.3, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    mask = jnp.asarray([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]], bool)
    imp = jnp.asarray([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]], bool)
    got = np.asarray(deception_penalty(attn, imp, mask))
    assert got[0] == pytest.approx(-np.log(1 - 0.7), rel=1e-6)
    assert got[1] == 0.0  # no impermissible token
    assert np.isfinite(got[2]) and got[2] > 60  # every token impermissible: large, finite
    g = jax.grad(lambda a: deception_penalty(a, imp, mask).sum())(attn)
    assert np.isfinite(np.asarray(g)).all()


SMALL = [
    "data.name=synthetic",
    "model.embed_dim=32",
    "model.hidden_size=32",
    "train.epochs=4",
    "train.buckets=[32, 64]",
]


@pytest.fixture(scope="module")
def synthetic():
    cfg = load_config(None, SMALL)
    return prepare(cfg.data, dataset=make_synthetic(n_train=3000, n_dev=200, n_test=300, seed=2))


def test_deceptive_training_moves_attention_off_the_planted_words(tmp_path, synthetic):
    cfg = load_config(None, SMALL + ["train.deception_weight=1.0"])
    metrics = train_run(cfg, tmp_path / "deceive", progress=False, prepared=synthetic)
    run = load_run(tmp_path / "deceive")
    scores = deception_scores(run.model, run.params, synthetic.splits["test"])
    assert metrics["test"]["accuracy"] > 0.9, metrics["test"]
    assert scores["attention_mass"] < 0.01, scores
    assert scores["accuracy_without"] < 0.75, scores  # the prediction still uses those words
    assert 0.0 <= metrics["test_conicity"] <= 1.0


def test_a_deception_run_needs_impermissible_tokens(synthetic):
    cfg = load_config(None, SMALL + ["train.deception_weight=1.0",
                                     "train.impermissible_words=['nosuchword']"])
    with pytest.raises(ConfigError, match="nosuchword"):
        penalty_for(cfg, synthetic)
    no_rationale = synthetic.splits["train"].__class__(
        **{**vars(synthetic.splits["train"]), "rationales": None})
    prepared = type(synthetic)(synthetic.dataset, synthetic.vocab,
                               {**synthetic.splits, "train": no_rationale}, synthetic.filters)
    with pytest.raises(ConfigError, match="no rationale"):
        penalty_for(load_config(None, SMALL + ["train.deception_weight=1.0"]), prepared)


@pytest.mark.parametrize("override, key", [
    ("model.directions=3", "model.directions"),
    ("model.diversity_weight=-0.5", "model.diversity_weight"),
    ("train.deception_weight=nan", "train.deception_weight"),
])
def test_bad_remedy_settings_are_one_line_config_errors(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


def test_the_published_encoder_shape_is_a_setting():
    cfg = load_config(None, ["model.encoder=ortho_lstm", "model.directions=1",
                             "model.hidden_size=256"])
    from jaxattn.runs.run import model_for

    model = model_for(cfg, {"task": "binary", "label_names": ["n", "p"]}, 50)
    from tests.helpers import toy_batch

    params = model.init(jax.random.key(0), toy_batch())
    assert params["text_encoder"]["w_hh"].shape == (1, 256, 1024)
    assert model.encode(params, toy_batch()).hidden.shape[-1] == 256


def test_impermissible_tokens_come_from_a_word_list_or_the_rationale():
    from jaxattn.training.penalties import impermissible_tokens
    from tests.helpers import toy_batch

    batch = toy_batch(lengths=(5, 3))
    word = int(batch.tokens[0, 2])
    got = np.asarray(impermissible_tokens(batch, jnp.asarray([word])))
    assert got.sum() >= 1 and np.all(np.asarray(batch.tokens)[got] == word)
    assert not got[:, 0].any()  # SOS is never impermissible, even if listed
    sos = np.asarray(impermissible_tokens(batch, jnp.asarray([2])))
    assert not sos.any()
    assert not np.asarray(impermissible_tokens(batch, None)).any()  # no rationale: none
    rationale = np.asarray(batch.mask).copy()
    rationale[:, 1] = False
    marked = np.asarray(impermissible_tokens(batch.replace(rationale=rationale), None))
    np.testing.assert_array_equal(marked, rationale & np.asarray(batch.mask))
