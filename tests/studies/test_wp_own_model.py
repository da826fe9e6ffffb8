"""The W&P suite of a model brought through the Python API (a Flax module defined here), as
``jaxattn.wiegreffe_pinter`` and as ``jaxattn wp --run RUN`` on the folder ``jaxattn.train``
wrote."""

import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxattn
from jaxattn.core.metrics import jsd
from jaxattn.data.batching import make_batch
from jaxattn.data.generators import make_synthetic
from jaxattn.report.evidence import NOT_RUN
from jaxattn.report.verdict import verdict_rows
from jaxattn.report.verdict_page import run_evidence
from jaxattn.runs.fit import read_params
from jaxattn.training.objective import AttentionSource
from jaxattn.training.trainer import predict

LAMBDAS = (0.0, 1.0)


class TinyNet(nn.Module):
    """Embed -> tanh projection -> additive attention -> linear decoder."""

    vocab_size: int
    width: int = 8

    def setup(self):
        self.embedder = nn.Embed(self.vocab_size, self.width)
        self.mix = nn.Dense(self.width)
        self.scorer = nn.Dense(1)
        self.out = nn.Dense(1)

    def embed(self, tokens):
        return self.embedder(tokens)

    def encode(self, embedded, mask):
        return jaxattn.Encoded(hidden=jnp.tanh(self.mix(embedded)), mask=mask)

    def score(self, hidden):
        return self.scorer(hidden)[..., 0]

    def decode(self, hidden, attn):
        return self.out(jnp.einsum("bt,bth->bh", attn, hidden))

    def __call__(self, tokens, mask):
        enc = self.encode(self.embed(tokens), mask)
        return self.decode(enc.hidden, jax.nn.softmax(self.score(enc.hidden), axis=-1))


@dataclasses.dataclass(frozen=True)
class TinyModel:
    net: TinyNet
    task: str = "binary"

    def init(self, rng, batch):
        return self.net.init(rng, batch.tokens, batch.mask)["params"]

    def embed(self, params, tokens):
        return self.net.apply({"params": params}, tokens, method=TinyNet.embed)

    def encode_embedded(self, params, batch, embedded):
        return self.net.apply({"params": params}, embedded, batch.mask, method=TinyNet.encode)

    def attend(self, params, enc):
        scores = self.net.apply({"params": params}, enc.hidden, method=TinyNet.score)
        return jaxattn.masked_softmax(scores, enc.mask)

    def decode(self, params, enc, attn):
        return self.net.apply({"params": params}, enc.hidden, attn, method=TinyNet.decode)

    def probs(self, logits):
        p = jax.nn.sigmoid(logits)
        return jnp.concatenate([1.0 - p, p], axis=-1)


CONFIG = jaxattn.TrainConfig(epochs=2, batch_size=16, buckets=(40,))
MLP_SIZE = jaxattn.ModelConfig(encoder="average", embed_dim=8, hidden_size=8)


def rebuild():
    """The model, data and training settings, as ``jaxattn wp --model FILE.py:rebuild`` takes."""
    dataset = make_synthetic(n_train=96, n_dev=32, n_test=40, seed=3)
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic"), dataset=dataset)
    return TinyModel(TinyNet(vocab_size=len(data.vocab))), data, CONFIG


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A tiny model of our own trained with jaxattn.train, its J&W analysis, and the suite."""
    root = tmp_path_factory.mktemp("own") / "mine"
    model, data, _ = rebuild()
    model = jaxattn.check_model(model)
    params, _ = jaxattn.train(model, data, CONFIG, out=root, progress=False)
    jaxattn.analyze(model, params, data, out=root / "analysis", only={"grad"}, progress=False)
    report = jaxattn.wiegreffe_pinter(model, params, data, out=root / "wp", config=CONFIG,
                                      seeds=2, lambdas=LAMBDAS, progress=False,
                                      diagnostic=MLP_SIZE)
    return root, report, model, params, data


def test_every_stage_runs_and_its_figures_recompute(own):
    root, report, model, params, data = own
    assert report == root / "wp" / "index.html" and report.exists()
    summary = json.loads((root / "wp" / "summary.json").read_text())
    assert summary["own_model"] and summary["model"]["encoder"] == "TinyModel (your own)"
    base = json.loads((root / "metrics.json").read_text())["test"]
    assert summary["base"]["f1"] == base["f1"]
    test = data.splits["test"]
    # The uniform variant: its own parameters decoded with 1/len attention give its test F1.
    uniform = read_params(root / "wp" / "runs" / "uniform" / "params.msgpack", params)
    probs = predict(model, uniform, test, source=AttentionSource("uniform"))
    pred, gold = probs.argmax(-1), test.labels
    tp = np.sum((pred == 1) & (gold == 1))
    f1 = 2 * tp / max(np.sum(pred == 1) + np.sum(gold == 1), 1)
    assert summary["uniform"]["f1"] == pytest.approx(f1, abs=1e-6)
    # The seeds: per instance, the JSD between the base's and seed 1's attention, by hand.
    seed = read_params(root / "wp" / "runs" / "seeds" / "seed_1" / "params.msgpack", params)
    arrays = np.load(root / "wp" / "seeds.npz")
    assert arrays["jsd"].shape == (2, len(test))
    for i in (0, 7, 31):
        batch = make_batch(test, [i])
        a = model.attend(params, model.encode_embedded(params, batch, model.embed(params,
                                                                                batch.tokens)))
        b = model.attend(seed, model.encode_embedded(seed, batch, model.embed(seed, batch.tokens)))
        assert arrays["jsd"][0, i] == pytest.approx(float(jsd(a, b)[0]), abs=1e-5)
    assert summary["seeds"]["seeds"] == [1, 2]
    assert [r["lambda"] for r in summary["adversary"]["sweep"]] == list(LAMBDAS)
    for kind in ("learned", "uniform", "imposed", "adversary"):
        assert 0.0 <= summary["diagnostic"][kind]["f1"] <= 1.0


def test_the_imposed_diagnostic_decodes_with_the_base_attention(own):
    root, _, model, params, data = own
    from jaxattn.studies.wiegreffe_pinter.suite import diagnostic_model

    mlp = diagnostic_model(data, MLP_SIZE)
    folder = root / "wp" / "runs" / "diagnostic" / "imposed"
    batch = make_batch(data.splits["test"], range(8))
    mlp_params = read_params(folder / "params.msgpack", mlp.init(jax.random.key(0), batch))
    base_attn = model.attend(params, model.encode_embedded(params, batch,
                                                            model.embed(params, batch.tokens)))
    enc = mlp.encode_embedded(mlp_params, batch, mlp.embed(mlp_params, batch.tokens))
    got = predict(mlp, mlp_params, data.splits["test"],
                  source=AttentionSource("imposed", model), source_params=params)[:8]
    want = mlp.probs(mlp.decode(mlp_params, enc, base_attn))
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["f1"] == json.loads(
        (root / "wp" / "summary.json").read_text())["diagnostic"]["imposed"]["f1"]


def test_both_reports_have_the_wp_rows(own):
    root, report, *_ = own
    rows = verdict_rows(run_evidence(root, root / "wp"))
    ran = {r.test: r.status for r in rows}
    assert len([t for t, s in ran.items() if s != NOT_RUN]) >= 4, ran
    for page in (report, root / "analysis" / "index.html"):
        text = page.read_text()
        assert "wp --run" not in text and "jaxattn.wiegreffe_pinter(" not in text  # none missing
        assert "uniform attention" in text.lower()


def test_a_missing_stage_names_the_call_that_works(tmp_path, own):
    """The J&W report of a model of your own, before its suite ran, names the Python call (the
    command rebuilds models from a run's config, which jaxattn.train does not write)."""
    root, _, model, params, data = own
    report = jaxattn.analyze(model, params, data, out=tmp_path / "alone" / "analysis",
                             only={"grad"}, progress=False)
    text = report.read_text()
    assert "jaxattn wp --run" not in text
    call = f'jaxattn.wiegreffe_pinter(model, params, data, out="{tmp_path / "alone"}/wp"'
    assert call in text.replace("&quot;", '"')


def test_rerun_reads_every_stage_back(own, capsys):
    root, report, model, params, data = own
    before = {p: p.stat().st_mtime_ns for p in (root / "wp").glob("*.json")}
    again = jaxattn.wiegreffe_pinter(model, params, data, out=root / "wp", config=CONFIG, seeds=2,
                                     lambdas=LAMBDAS, progress=False, diagnostic=MLP_SIZE)
    assert again == report
    after = {p: p.stat().st_mtime_ns for p in (root / "wp").glob("*.json")}
    assert {p: t for p, t in after.items() if p.name != "summary.json"} == {
        p: t for p, t in before.items() if p.name != "summary.json"}


def test_a_model_needs_its_params_data_and_folder():
    with pytest.raises(jaxattn.ConfigError, match="needs its params"):
        jaxattn.wiegreffe_pinter(TinyModel(TinyNet(vocab_size=5)))


def test_the_command_runs_on_such_a_folder_given_the_function_that_rebuilds_it(own, capsys):
    from jaxattn.cli import main

    root, report = own[0], own[1]
    assert main(["wp", "--run", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "trained with jaxattn.train from a model of your own" in err
    assert f"jaxattn wp --run {root} --model FILE.py:FUNCTION" in err
    assert f'jaxattn.wiegreffe_pinter(model, params, data, out="{root}/wp"' in err

    done = {p: p.stat().st_mtime_ns for p in (root / "wp").glob("[us]*[!y].json")}
    assert set(p.name for p in done) == {"uniform.json", "seeds.json"}
    args = ["wp", "--run", str(root), "--model", f"{__file__}:rebuild", "--only", "uniform,seeds",
            "--seeds", "2", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"report: {report.resolve()}" and printed[0].startswith("verdict:")
    assert {p: p.stat().st_mtime_ns for p in done} == done  # read back, not retrained
    with pytest.raises(SystemExit) as usage:
        main(["wp", "--run", str(root), "--model", f"{__file__}:nothing", "--quiet"])
    assert usage.value.code == 2 and "defines no function 'nothing'" in capsys.readouterr().err
