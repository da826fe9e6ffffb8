"""The self-attention stage: the attention each real token receives, layer by layer, its place in
the J&W report, and its absence for models without self-attention layers."""

from __future__ import annotations

import json
import re

import jax
import numpy as np
import pytest

import jaxattn
from jaxattn.data.batching import make_batch
from jaxattn.studies.jain_wallace import stages
from jaxattn.studies.jain_wallace.analyze import applicable_stages, chosen_stages
from jaxattn.studies.stage_cache import load_stage
from tests.helpers import toy_model

FAST = dict(samples=8, buckets=(64,))
LIMIT = 8
LAYER_ROWS = ("self-attention, layer 1 (received)", "self-attention, layer 2 (received)")


def _perturbed(params, seed=1, scale=0.3):
    """``params`` plus noise, so that the attention maps are far from uniform."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )


def _received_by_hand(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[L, B, heads, T, T], [B, T] -> [B, L, T], one query row at a time."""
    n_layers, b, heads, t, _ = maps.shape
    out = np.zeros((b, n_layers, t))
    for row in range(b):
        queries = [q for q in range(t) if mask[row, q]]
        for layer in range(n_layers):
            for k in range(t):
                if not mask[row, k]:
                    continue
                total = sum(maps[layer, row, h, q, k] for h in range(heads) for q in queries)
                out[row, layer, k] = total / (heads * len(queries))
    return out


def test_the_stage_is_the_mean_over_heads_and_real_queries_of_each_key():
    model, params, batch = toy_model("binary", "transformer")
    params = _perturbed(params)
    stage = stages.STAGE_SPECS["self_attn"]
    got = np.asarray(stage.compute(model, params, batch, stages.AnalysisOptions())["self_attn"])
    maps = np.asarray(model.self_attention(params, batch))
    mask = np.asarray(batch.mask)
    assert got.shape == (batch.tokens.shape[0], 2, batch.tokens.shape[1])
    np.testing.assert_allclose(got, _received_by_hand(maps, mask), rtol=1e-5, atol=1e-7)
    # Only real tokens receive anything: not the markers, not padding, not a padding row.
    assert np.all(got[~np.broadcast_to(mask[:, None, :], got.shape)] == 0)
    assert np.all(got[-1] == 0)
    # What the real tokens do not receive goes to the boundary markers.
    real_rows = mask.any(axis=1)
    assert np.all(got[real_rows].sum(-1) <= 1 + 1e-6) and np.all(got[real_rows].sum(-1) > 0)
    assert stage.token_keys == ("self_attn",)  # its last axis is T


def test_models_without_self_attention_layers_skip_the_stage():
    assert "self_attn" in stages.list_stages() and "self_attn" in chosen_stages(None)
    assert chosen_stages({"self_attn"}) == ["self_attn"]
    for encoder in ("bilstm", "transformer"):
        model, params, batch = toy_model("binary", encoder)
        layers = stages.self_attention_layers(model, params, batch)
        assert layers == (2 if encoder == "transformer" else 0)


@pytest.fixture(scope="module")
def data():
    return jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=100))


def test_a_bilstm_analysis_runs_without_the_stage(data, tmp_path):
    model, params, _ = toy_model("binary", "bilstm", vocab_size=len(data.vocab))
    split = data.splits["test"]
    assert "self_attn" not in applicable_stages(model, params, split, np.arange(LIMIT))
    # Asked for by name, it is skipped too: not an error.
    report = jaxattn.analyze(model, params, data, out=tmp_path / "analysis", limit=LIMIT,
                             only={"grad", "self_attn"}, progress=False, **FAST)
    folder = report.parent
    assert not (folder / "self_attn.npz").exists() and (folder / "grad.npz").exists()
    summary = json.loads((folder / "summary.json").read_text())
    assert "self_attention" not in summary and "attn_grad" in summary["kendall"]
    assert "self-attention" not in report.read_text()


@pytest.fixture(scope="module")
def transformer_report(data, tmp_path_factory):
    model, params, _ = toy_model("binary", "transformer", vocab_size=len(data.vocab))
    params = _perturbed(params)
    out = tmp_path_factory.mktemp("tf") / "analysis"
    report = jaxattn.analyze(model, params, data, out=out, limit=LIMIT,
                             only={"grad", "self_attn"}, progress=False, **FAST)
    return model, params, report


def test_a_transformer_report_shows_each_layer_beside_the_pooling_attention(
    data, transformer_report
):
    model, params, report = transformer_report
    folder = report.parent
    arrays, meta = load_stage(folder / "self_attn.npz")
    base, _ = load_stage(folder / "attention.npz")
    received = arrays["self_attn"]
    assert received.shape == (LIMIT, 2, base["attn"].shape[1])
    # Rows in split order, each equal to its own computation from the model.
    split = data.splits["test"]
    for row in (0, LIMIT - 1):
        batch = make_batch(split, [row], buckets=(64,))
        maps = np.asarray(model.self_attention(params, batch))
        expected = _received_by_hand(maps, np.asarray(batch.mask))[0]
        width = received.shape[-1]  # the longest analysed row; the rest is padding
        assert np.all(expected[:, width:] == 0)
        np.testing.assert_allclose(received[row], expected[:, :width], rtol=1e-5, atol=1e-7)

    page = report.read_text()
    tables = page.split('<table class="heat">')[1:]
    assert len(tables) == LIMIT  # every instance is shown, in row order
    mask = load_stage(folder / "instances.npz")[0]["mask"]
    for row, table in enumerate(tables):
        names = re.findall(r'<td class="name">([^<]*)</td>', table)
        assert names[:4] == ["attention", *LAYER_ROWS, "gradient (below attention)"]
        for layer, name in enumerate(LAYER_ROWS):
            shown = [float(v) for v in re.findall(re.escape(name) + r": ([0-9.]+)", table)]
            # Each token's tooltip holds its own value (the row's real tokens, not another row's).
            np.testing.assert_allclose(shown, received[row, layer][mask[row]], atol=6e-5)

    summary = json.loads((folder / "summary.json").read_text())
    layers = summary["self_attention"]["layers"]
    assert len(layers) == 2
    tau, _ = jaxattn.kendall_tau(received[:, 1], base["attn"], mask)
    assert summary["self_attention"]["last_layer_kendall_mean"] == pytest.approx(np.nanmean(tau))
    for stats in layers:
        assert stats["kendall_with_attention"]["overall"]["n"] == LIMIT
        assert 0 < stats["real_token_share"]["mean"] <= 1
    assert "Self-attention received per token, by layer" in page
    assert "self_attn" in summary["timings"]
