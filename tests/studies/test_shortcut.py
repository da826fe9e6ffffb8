"""The planted-shortcut stage: a tiny model trained where only the planted word predicts the
label relies on it; the stage's figures equal a brute-force computation; data without planted
positions skips it with its reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

import jaxattn
from jaxattn.data.batching import eval_batches
from jaxattn.data.config import DataConfig
from jaxattn.data.corpora.sst2_shortcut import counterfactual, plant_shortcut
from jaxattn.data.dataset import Dataset, Example
from jaxattn.models.model import build_model
from jaxattn.report.evidence import AGAINST, NOT_APPLICABLE, SUPPORTS, Evidence
from jaxattn.studies.jain_wallace.analyze import chosen_stages, skipped_stages
from jaxattn.studies.jain_wallace.report import load_data
from jaxattn.studies.registry import REGISTRY, importance_labels
from jaxattn.studies.self_attention.shortcut import shortcut_ranks, shortcut_verdict
from jaxattn.training.config import TrainConfig

FILLER = "the a film plot is was very it this that of and to in on with cast scene".split()
FAST = dict(ig_steps=4, ig_chunk=2, samples=2, buckets=(16,))


def _texts(n, rng, uid):
    # labels independent of the filler: only the planted word can predict them
    return [Example(tuple(rng.choice(FILLER, size=int(rng.integers(5, 10)))), i % 2,
                    uid=f"{uid}{i}") for i in range(n)]


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    splits = {name: plant_shortcut(_texts(n, rng, name), share, rng)
              for name, n, share in (("train", 240, 0.75), ("dev", 20, 0.75), ("test", 24, 1.0))}
    return Dataset("planted", "binary", ("negative", "positive"), splits)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("shortcut")
    dataset = _dataset()
    data = jaxattn.prepare_data(DataConfig(name="synthetic"), dataset=dataset)
    model = build_model(vocab_size=len(data.vocab), task="binary", encoder="average",
                        attention="additive", embed_dim=16, hidden_size=8)
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=0.05, buckets=(16,),
                         selection="dev")
    params, _ = jaxattn.train(model, data, config, out / "run", progress=False)
    jaxattn.analyze(model, params, data, out / "analysis", only=["shortcut"], progress=False,
                    **FAST)
    return model, params, data, dataset, out / "analysis"


def _accuracy(model, params, split):
    right = []
    for batch in eval_batches(split, 64, (16,)):
        probs = np.asarray(model.probs(jaxattn.forward(model, params, batch)[0]))
        real = np.asarray(batch.index) >= 0
        right += list(probs.argmax(-1)[real] == np.asarray(batch.labels)[real])
    return float(np.mean(right))


def test_the_stage_reads_every_registered_importance():
    assert set(REGISTRY["shortcut"].needs) == set(importance_labels())
    assert chosen_stages("shortcut")[-1] == "shortcut"


def test_the_tiny_model_relies_on_the_shortcut(trained):
    model, params, data, dataset, folder = trained
    summary = json.loads((folder / "summary.json").read_text())["shortcut"]
    rel = summary["reliance"]
    assert rel["n"] == 24 and rel["accuracy_with"] >= 0.95 and rel["relies"]
    assert rel["drop"] >= 0.25
    # the counterfactual test sets of the data module tell the same
    test = dataset.splits["test"]
    cfs = {mode: jaxattn.prepare_data(DataConfig(name="synthetic"), vocab=data.vocab,
                                      dataset=Dataset("cf", "binary", dataset.label_names,
                                                      {**dataset.splits,
                                                       "test": counterfactual(test, mode)}))
           for mode in ("removed", "against")}
    assert _accuracy(model, params, cfs["removed"].splits["test"]) == pytest.approx(
        rel["accuracy_without"])
    assert _accuracy(model, params, cfs["against"].splits["test"]) <= 0.2
    tables = (folder / "tables.md").read_text()
    assert tables.count("Planted shortcut") == 2 and "| chance (random ranking) | 0." in tables


def test_the_stage_figures_equal_a_brute_force_count(trained):
    *_, folder = trained
    data = load_data(folder)
    summary = json.loads((folder / "summary.json").read_text())["shortcut"]
    imps = data.importances()
    assert set(summary["methods"]) == set(imps) >= {"attn", "grad", "loo", "ig"}
    for key, scores in imps.items():
        ranks, firsts, aps = [], [], []
        for row in range(len(data.labels)):
            real = [t for t in range(scores.shape[1]) if data.mask[row, t]]
            (shortcut,) = [t for t in real if data.rationale[row, t]]
            order = sorted(real, key=lambda t: (-scores[row, t], t != shortcut))
            # ties with the planted token count against the method
            rank = 1 + sum(scores[row, t] >= scores[row, shortcut] for t in real if t != shortcut)
            ranks.append(rank)
            firsts.append(float(rank == 1 and order[0] == shortcut))
            aps.append(1.0 / rank)  # one relevant item: precision at its place
        got = summary["methods"][key]
        assert got["rank"]["mean"] == pytest.approx(np.mean(ranks))
        assert got["p_at_1"]["mean"] == pytest.approx(np.mean(firsts))
        assert got["auprc"]["mean"] == pytest.approx(np.mean(aps))
        stage_rows = data.stages["shortcut"]
        if f"{key}.rank" in stage_rows:  # the per-piece figures of the stage file
            assert np.allclose(stage_rows[f"{key}.rank"], ranks)
    lengths = data.mask.sum(-1)
    assert summary["chance"]["rank"]["mean"] == pytest.approx(np.mean((lengths + 1) / 2))
    fact = REGISTRY["shortcut"].facts(data, 0)[0]
    removed = data.stages["shortcut"]["probs_removed"][0]
    assert fact.endswith(f"(p {removed.max():.3f})") and data.class_names[removed.argmax()] in fact
    p1 = summary["headline"]["p_at_1"]
    assert summary["headline"]["most_often_first"] == max(p1, key=p1.get)


def test_ranks_with_several_planted_tokens_and_ties():
    scores = np.asarray([[0.1, 0.5, 0.5, 0.2, 0.0], [0.3, 0.1, 0.2, 0.9, 0.0]])
    planted = np.asarray([[0, 1, 0, 0, 0], [1, 0, 1, 0, 0]], bool)
    mask = np.asarray([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    got = shortcut_ranks(scores, planted, mask)
    assert got["rank"].tolist() == [2.0, 2.0]  # a tie counts against; the best planted counts
    assert got["p_at_1"].tolist() == [0.0, 0.0]
    assert got["auprc"] == pytest.approx([0.5, (1 / 2 + 2 / 3) / 2])
    none = shortcut_ranks(scores, np.zeros_like(planted), mask)
    assert np.isnan(none["rank"]).all() and np.isnan(none["auprc"]).all()


def test_data_without_planted_positions_skips_the_stage(trained):
    model, params, data, dataset, _ = trained
    plain = {n: [Example(ex.tokens, ex.label) for ex in exs] for n, exs in dataset.splits.items()}
    prepared = jaxattn.prepare_data(DataConfig(name="synthetic"), vocab=data.vocab,
                                    dataset=Dataset("plain", "binary", dataset.label_names, plain))
    reasons = skipped_stages(model, params, prepared.splits["test"], np.arange(4))
    assert reasons["shortcut"] == "the data carries no planted positions (no rationale)"


def _summary(drop, p1):
    methods = {k: {"label": k} for k in p1}
    return {"shortcut": {
        "reliance": {"n": 10, "accuracy_with": 0.9, "accuracy_without": 0.9 - drop,
                     "drop": drop, "relies": drop >= 0.05},
        "headline": {"p_at_1": p1, "most_often_first": max(p1, key=p1.get)},
        "methods": methods, "chance": {"p_at_1": {"mean": 0.1}}}}


def test_the_verdict_row_reads_reliance_and_precision_at_1():
    row = shortcut_verdict(Evidence(jw=_summary(0.3, {"attn": 0.2, "grad": 0.9, "loo": 0.8})))
    assert row.status == AGAINST and "ranked first most often by grad" in row.figure
    row = shortcut_verdict(Evidence(jw=_summary(0.3, {"attn": 0.9, "grad": 0.5, "loo": 0.8})))
    assert row.status == SUPPORTS
    row = shortcut_verdict(Evidence(jw=_summary(0.3, {"attn": 0.97, "grad": 1.0, "loo": 1.0})))
    assert row.status == SUPPORTS  # within the margin of the others' median
    row = shortcut_verdict(Evidence(jw=_summary(0.3, {"attn": 0.9, "grad": 1.0, "loo": 1.0})))
    assert row.status == AGAINST
    row = shortcut_verdict(Evidence(jw=_summary(0.01, {"attn": 0.9, "grad": 0.5})))
    assert row.status == NOT_APPLICABLE and "does not rely" in row.reading
    row = shortcut_verdict(Evidence(jw=_summary(0.3, {"grad": 0.5})))
    assert row.status == NOT_APPLICABLE and "no pooling attention" in row.reading
