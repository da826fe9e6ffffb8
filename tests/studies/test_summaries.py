"""The ``summaries`` stage: its values against the explain functions on the same batch, flow
beyond its length limit, ERASER on a [CLS] head (tokens deleted by hand), and the faithfulness
table and verdict rows of a tiny BERT study."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxattn
from jaxattn.core.protocol import Batch, predict_logits
from jaxattn.explain import attention_summaries as S
from jaxattn.models.model import build_model
from jaxattn.models.pretrained.bert import Bert, BertConfig
from jaxattn.models.pretrained.classifier import BertAttentionClassifier, BertClsClassifier
from jaxattn.studies.jain_wallace import battery, stages
from jaxattn.studies.self_attention import summaries as stage
from jaxattn.studies.self_attention.summaries_report import TITLE
from jaxattn.studies.stage import skip_reason
from tests.helpers import perturbed

CONFIG = BertConfig(vocab_size=30, hidden_size=16, num_layers=2, num_heads=2,
                    intermediate_size=20, max_position_embeddings=10)
OPTS = stages.AnalysisOptions()


def _batch():
    tokens = jnp.array([[2, 7, 8, 9, 3, 0], [2, 5, 6, 3, 0, 0], [0, 0, 0, 0, 0, 0]], jnp.int32)
    valid = tokens > 0
    return Batch(tokens=tokens, mask=valid & (tokens != 2) & (tokens != 3), valid=valid,
                 labels=jnp.array([0, 1, 0]), weights=jnp.array([1.0, 1.0, 0.0]),
                 index=jnp.array([0, 1, -1]))


@pytest.fixture(scope="module")
def cls_model():
    model = BertClsClassifier(Bert(CONFIG), task="multiclass", num_classes=3)
    batch = _batch()
    return model, perturbed(model.init(jax.random.key(0), batch), scale=0.2), batch


def _expected(model, params, batch, query):
    """Every summary from the explain functions (the jitted entry points for the gradient-based
    ones, the plain functions for the rest), flow one row at a time on the row's own positions;
    zero off the real tokens."""
    maps = model.self_attention(params, batch)
    valid, mask = np.asarray(batch.valid), np.asarray(batch.mask)
    rows = S.query_rows(batch.valid, query)
    read = S.summarize(model, params, batch, query)
    norms = S.norm_based(maps, S.bert_norm_inputs(model, params, batch), batch.valid, rows)
    out = {
        "sa_raw": S.raw_attention(maps, batch.valid, rows),
        "sa_rollout": S.rollout(maps, batch.valid, rows, 0.5),
        "sa_chefer": read.gradient_weighted,
        "sa_attr": S.attribute_attention(model, params, batch, query, steps=20).total,
        "sa_norm": norms.attention[-1],
        "sa_norm_ln": norms.residual_ln[-1],
    }
    out = {k: np.where(mask, np.asarray(v), 0.0) for k, v in out.items()}
    flow = np.zeros(mask.shape)
    for b in range(mask.shape[0]):
        n = int(valid[b].sum())
        if n:
            one = S.attention_flow(maps[:, b:b + 1, :, :n, :n], valid[b:b + 1, :n],
                                   np.asarray(rows)[b:b + 1, :n])
            flow[b, :n] = np.where(mask[b, :n], one[0], 0.0)
    out["sa_flow"] = flow
    layers = np.stack([np.asarray(S.raw_attention(maps[: depth + 1], batch.valid, rows))
                       for depth in range(maps.shape[0])], axis=1)
    out["sa_raw_layers"] = np.where(mask[:, None], layers, 0.0)
    return out


def test_the_stage_gives_what_the_explain_functions_give(cls_model):
    model, params, batch = cls_model
    assert skip_reason(stages.STAGE_SPECS["summaries"], model, params, batch) is None
    got = stage.summaries(model, params, batch, OPTS)
    assert stage.query_of(model) == "first"  # the [CLS] row
    assert stage.query_of(BertAttentionClassifier(Bert(CONFIG))) == "mean"
    want = _expected(model, params, batch, "first")
    assert set(got) == {*want, stage.RANDOM, stage.BEYOND, stage.QUERY}
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=2e-4, atol=2e-6, err_msg=key)
        assert np.abs(value).max() > 0, key  # a check that can fail
    assert got["sa_raw_layers"].shape == (3, CONFIG.num_layers, 6)  # never [L, H, T, T]
    assert all(np.asarray(v).shape[:1] == (3,) for v in got.values())
    assert not got[stage.BEYOND].any() and got[stage.QUERY].all()
    # The random floor: seeded by the stage's stream and the row, zero off the real tokens.
    again = stage.summaries(model, params, batch, OPTS)[stage.RANDOM]
    np.testing.assert_array_equal(got[stage.RANDOM], again)
    assert np.all(got[stage.RANDOM][~np.asarray(batch.mask)] == 0)
    assert np.all(got[stage.RANDOM][np.asarray(batch.mask)] > 0)


def test_flow_is_nan_beyond_its_length_limit(cls_model):
    model, params, batch = cls_model
    maps = model.self_attention(params, batch)
    rows = S.query_rows(batch.valid, "first")
    mixed = S.residual_attention(maps, stage.RESIDUAL)  # padded rows and keys: same valid rows
    flow, beyond = stage.flow_rows(mixed, batch.valid, rows, batch.mask, limit=4)
    # Row 0 has 5 positions ([CLS] 3 pieces [SEP]): beyond 4; row 1 has 4; row 2 none.
    np.testing.assert_array_equal(beyond, [True, False, False])
    assert np.all(np.isnan(flow[0])) and np.all(np.isfinite(flow[1:]))
    one = S.attention_flow(maps[:, 1:2, :, :4, :4], batch.valid[1:2, :4], rows[1:2, :4])
    np.testing.assert_allclose(flow[1, :4], np.where(batch.mask[1, :4], one[0], 0), atol=1e-6)
    # ERASER and plausibility leave such a row out rather than rank NaN.
    given = {"sa_flow": jnp.asarray(flow), "loo": jnp.asarray(flow[::-1].copy() * 0 + 1.0)}
    out = battery.eraser_tests(model, params, batch, OPTS, given)
    assert np.all(np.isnan(out["sa_flow.comprehensiveness"][0]))
    assert np.all(np.isfinite(out["sa_flow.comprehensiveness"][1]))
    assert np.all(np.isfinite(out["loo.comprehensiveness"][0]))


def test_eraser_runs_on_the_cls_head_by_deleting_tokens(cls_model):
    model, params, batch = cls_model
    assert "pooling" not in jaxattn.capabilities(model)
    assert skip_reason(stages.STAGE_SPECS["eraser"], model, params, batch) is None
    assert skip_reason(stages.STAGE_SPECS["erasure"], model, params, batch) is not None
    scores = jnp.asarray([[0, 0.1, 0.9, 0.5, 0, 0], [0, 0.3, 0.2, 0, 0, 0], [0.0] * 6])
    out = battery.eraser_tests(model, params, batch, OPTS, {"loo": scores})
    probs = np.asarray(model.probs(predict_logits(model, params, batch)))
    target = probs.argmax(-1)
    # Row 0, the 1% bin: one piece, the top one (token 8 at position 2), deleted; [CLS] / [SEP]
    # stay. Sufficiency keeps it alone between [CLS] and [SEP].
    for kept, measure in (([2, 7, 9, 3], "comprehensiveness"), ([2, 8, 3], "sufficiency")):
        short = jnp.asarray([kept], jnp.int32)
        ones = jnp.ones_like(short, bool)
        b = Batch(tokens=short, mask=ones & (short != 2) & (short != 3), valid=ones,
                  labels=batch.labels[:1], weights=jnp.ones(1), index=jnp.zeros(1, jnp.int32))
        p = np.asarray(model.probs(predict_logits(model, params, b)))[0, target[0]]
        np.testing.assert_allclose(out[f"loo.{measure}"][0, 0], probs[0, target[0]] - p,
                                   atol=1e-5)
    assert np.all(out["loo.comprehensiveness"][2] == 0)  # a padding row


def test_models_without_the_seam_have_no_summary_keys():
    model = build_model(vocab_size=30, task="binary", num_classes=2, encoder="bilstm",
                        attention="additive", embed_dim=12, hidden_size=8)
    reason = skip_reason(stages.STAGE_SPECS["summaries"], model, None, None)
    assert "self_attention_seam" in reason
    # The battery asks for the keys; a run without the stage just does not give them.
    assert set(stage.SUMMARY_KEYS) <= set(battery.METHODS)
    assert "summaries" in stages.providers("eraser")


@pytest.fixture(scope="module")
def bert_study(tmp_path_factory):
    from jaxattn.data.generators import make_synthetic
    from jaxattn.data.tokenizers import WordPieceTokenizer
    from jaxattn.models.pretrained import load_folder
    from tests.helpers import tiny_bert_folder

    words = {w for split in make_synthetic().splits.values() for ex in split for w in ex.tokens}
    folder = tiny_bert_folder(tmp_path_factory.mktemp("hf") / "tiny", words, hidden=16)
    loaded = load_folder(folder)
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=20),
                                vocab=WordPieceTokenizer(loaded.tokenizer, 64))
    model = BertClsClassifier(loaded.model, task="binary")
    params = perturbed(model.init(jax.random.key(0)), scale=0.1)
    params["bert"] = {**loaded.params, "pooler": params["bert"]["pooler"]}
    out = tmp_path_factory.mktemp("study") / "analysis"
    report = jaxattn.analyze(model, params, data, out=out, limit=4,
                             only={"summaries", "eraser", "plausibility"}, progress=False,
                             samples=2, ig_steps=2, ig_chunk=2, buckets=(64,))
    return report


def test_the_table_and_the_verdict_rows_of_a_bert_study(bert_study):
    folder = bert_study.parent
    summary = json.loads((folder / "summary.json").read_text())
    block = summary["self_attention_summaries"]
    assert block["query"] == "[CLS] (first position)"
    assert block["flow"]["beyond_limit"] == 0
    assert list(block["methods"]) == [*stage.SUMMARY_KEYS, "grad", "loo", "loo_words", "ig",
                                      "random"]
    assert {"tau_grad", "tau_loo", "tau_loo_words"} <= set(block["methods"]["sa_raw"])
    assert {"sa_raw", "sa_flow", "sa_chefer", "loo_words"} <= set(summary["eraser"]["methods"])
    assert summary["eraser"]["unit"] == "word"  # the synthetic words split into pieces
    assert "sa_rollout" in summary["plausibility"]["methods"]
    tables = (folder / "tables.md").read_text()
    assert TITLE in tables
    assert "tau vs LOO (per word)" in tables and "AUPRC vs rationale (per word)" in tables
    assert "tau vs word LOO (per word)" in tables and "ERASER deletes whole words" in tables
    assert "top k% of the words deleted" in tables
    assert "Abnar & Zuidema 2020" in tables and "Neely et al. 2022" in tables
    verdict = tables[: tables.index(TITLE)]  # the verdict opens tables.md
    rows = [line for line in verdict.splitlines() if line.startswith("| self-attention summary:")]
    assert len(rows) == len(stage.SUMMARY_KEYS)  # BERT is post-LN: both norm rows
    assert all("random ranking: comprehensiveness" in r for r in rows)
    assert "Published (Abnar & Zuidema 2020)" in verdict
    page = bert_study.read_text()
    assert TITLE in page and "self-attention, layer 2 (query row)" in page
