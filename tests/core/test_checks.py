"""The contract's checks (``jaxattn.core.checks``): a model missing a function, and a model whose
outputs break the contract, are refused with a sentence naming the problem, before training or
analysing it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from jaxattn.core.checks import ModelOutputError, check_model, check_model_outputs
from tests.core.test_protocol import RunningMeanModel, _Net
from tests.helpers import toy_batch


def test_check_model_names_what_is_missing():
    @dataclasses.dataclass(frozen=True)
    class Half:
        task: str = "binary"

        def embed(self, params, tokens):
            return tokens

    with pytest.raises(
        TypeError,
        match=r"missing init, encode_embedded, probs, logits \(or the pooling seam's attend and",
    ):
        check_model(Half())


@dataclasses.dataclass(frozen=True)
class _Broken(RunningMeanModel):
    """RunningMeanModel with one output spoiled."""

    fault: str = ""

    def attend(self, params, enc):
        attn = super().attend(params, enc)
        if self.fault == "shape":
            return attn[:, :-1]
        if self.fault == "scale":
            return 2.0 * attn
        if self.fault == "off-mask":
            return jax.nn.softmax(jnp.zeros(attn.shape), axis=-1)
        if self.fault == "uniform":  # constant attention: valid
            m = enc.mask.astype(jnp.float32)
            return m / jnp.maximum(m.sum(axis=1, keepdims=True), 1.0)
        return attn

    def probs(self, logits):
        p = super().probs(logits)
        return p * 3.0 if self.fault == "probs" else p


@pytest.mark.parametrize("fault,sentence", [
    ("shape", "_Broken.attend returned shape [4, 9], expected [4, 10] [B, T]."),
    ("scale", "_Broken.attend does not sum to 1 over batch.mask (row 0 sums to 2)."),
    ("off-mask", "_Broken.attend is not 0 off batch.mask (row"),
    ("probs", "_Broken.probs is not a distribution (row 0 sums to 3)."),
])
def test_check_model_outputs_names_each_problem(setup, fault, sentence):
    _, params, batch = setup
    with pytest.raises(ModelOutputError) as err:
        check_model_outputs(_Broken(fault=fault), params, batch)
    assert sentence in str(err.value) and "\n" not in str(err.value), err.value
    check_model_outputs(_Broken(fault="uniform"), params, batch)  # a distribution: accepted


def test_train_and_analyze_refuse_a_model_whose_attention_is_no_distribution(tmp_path):
    import jaxattn

    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=20))
    model = _Broken(net=_Net(vocab_size=len(data.vocab), width=8), fault="scale")
    with pytest.raises(ModelOutputError, match="does not sum to 1 over batch.mask"):
        jaxattn.train(model, data, jaxattn.TrainConfig(epochs=1), out=tmp_path / "run",
                      progress=False)
    assert not (tmp_path / "run" / "params.msgpack").exists()
    params = model.init(jax.random.key(0), toy_batch(lengths=(3,), vocab_size=len(data.vocab)))
    with pytest.raises(ModelOutputError, match="does not sum to 1 over batch.mask"):
        jaxattn.analyze(model, params, data, out=tmp_path / "analysis", limit=4, progress=False)
    assert not (tmp_path / "analysis").exists() or not any((tmp_path / "analysis").iterdir())


def test_constant_attention_gets_a_report_saying_what_is_not_defined(tmp_path):
    import jaxattn

    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=20))
    model = _Broken(net=_Net(vocab_size=len(data.vocab), width=8), fault="uniform")
    params = model.init(jax.random.key(0), toy_batch(lengths=(3,), vocab_size=len(data.vocab)))
    report = jaxattn.analyze(
        model, params, data, out=tmp_path / "analysis", limit=8, progress=False,
        num_permutations=4, num_adversaries=2, adv_steps=5, ig_steps=4, ig_chunk=2, samples=2,
        buckets=(64,),
    )
    page = report.read_text()
    assert "tau attn~grad not defined, attn~LOO not defined" in page
    assert "its Kendall tau with the other methods is not defined" in page
    tables = (report.parent / "tables.md").read_text()
    assert "tau attn~grad not defined" in tables and "None" not in tables.split("\n", 1)[1]
