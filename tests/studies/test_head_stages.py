"""The head-level stages: their values against re-running a tiny BERT with one head's maps
replaced through the seam (and, for zeroed heads, with the head's value weights zeroed), the
encoder restarted at a layer against a full pass, the L x H figure and the report's table."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxattn
from jaxattn.core.errors import ConfigError
from jaxattn.core.metrics import jsd, tvd
from jaxattn.core.protocol import Batch, HeadMaps, has_layer_restart
from jaxattn.explain.interventions import instance_keys, permutation_indices
from jaxattn.models.pretrained.bert import Bert, BertConfig
from jaxattn.models.pretrained.classifier import BertClsClassifier
from jaxattn.studies.jain_wallace.analyze import chosen_stages
from jaxattn.studies.jain_wallace.stages import AnalysisOptions
from jaxattn.studies.registry import random_key
from jaxattn.studies.self_attention import head_report, heads
from jaxattn.studies.stage_cache import load_stage
from tests.helpers import perturbed, toy_model

L, H, P = 2, 2, 3
MODEL = BertClsClassifier(
    Bert(BertConfig(vocab_size=30, hidden_size=16, num_layers=L, num_heads=H,
                    intermediate_size=20, max_position_embeddings=10)),
    task="multiclass", num_classes=3,
)
OPTS = AnalysisOptions(head_permutations=P, heads_chunk=1)


@pytest.fixture(scope="module")
def setup():
    tokens = jnp.array([[2, 7, 8, 9, 3, 0], [2, 5, 11, 3, 0, 0], [2, 6, 3, 0, 0, 0]], jnp.int32)
    valid = tokens > 0
    batch = Batch(tokens=tokens, mask=valid & (tokens != 2) & (tokens != 3), valid=valid,
                  labels=jnp.array([0, 2, 1]), weights=jnp.ones(3), index=jnp.arange(3))
    params = jax.jit(lambda key: perturbed(MODEL.init(key, batch), scale=0.5))(jax.random.key(0))
    return params, batch


@jax.jit
def _probs(params, batch, heads=None):
    enc = MODEL.encode_embedded(params, batch, MODEL.embed(params, batch.tokens), heads=heads)
    return MODEL.probs(MODEL.logits(params, enc))


@functools.partial(jax.jit, static_argnums=3)
def _restart(params, batch, hidden, layer, maps=None, select=None):
    return MODEL.encode_from_layer(params, batch, hidden, layer, maps, select).hidden


@jax.jit
def _hidden(params, batch, heads=None):
    return MODEL.encode_embedded(params, batch, MODEL.embed(params, batch.tokens), heads).hidden


def test_restarting_at_a_layer_equals_the_full_pass(setup):
    params, batch = setup
    assert has_layer_restart(MODEL) and "layer_restart" in jaxattn.capabilities(MODEL)
    states, maps = jax.jit(MODEL.layer_inputs)(params, batch)
    full = _hidden(params, batch)
    np.testing.assert_allclose(maps, MODEL.self_attention(params, batch), atol=1e-5)
    edited = maps.at[1, :, 0].set(maps[0, :, 1])  # layer 2, head 1 <- layer 1, head 2
    select = np.zeros((L, H), bool)
    select[1, 0] = True
    for layer in range(L):
        again = _restart(params, batch, states[layer], layer)
        np.testing.assert_allclose(again, full, atol=1e-5)
    given = _restart(params, batch, states[1], 1, edited[1], select[1])
    through_seam = _hidden(params, batch, HeadMaps(edited, select))
    np.testing.assert_allclose(given, through_seam, atol=1e-5)
    assert float(jnp.abs(given - full).max()) > 1e-3  # the edit is seen
    for layer in range(L):  # given maps at every layer, the first one included
        other = maps[(layer + 1) % L]  # another layer's maps, for head 1 of this one
        only = np.zeros((L, H), bool)
        only[layer, 1] = True
        again = _restart(params, batch, states[layer], layer, other, only[layer])
        np.testing.assert_allclose(
            again, _hidden(params, batch, HeadMaps(maps.at[layer].set(other), only)), atol=1e-5)
        assert float(jnp.abs(again - full).max()) > 1e-3


def _replacement(kind, maps, layer, head, valid, perms):
    """[P or 1, B, T, T] what replaces head (layer, head)'s maps, built by hand."""
    own = np.asarray(maps[layer, :, head])
    if kind == "uniform":
        rows = valid / valid.sum(-1, keepdims=True)
        return np.broadcast_to(rows[:, None, :], own.shape)[None]
    if kind == "zero":
        return np.zeros_like(own)[None]
    if kind == "donor":  # the next head of the same layer
        return np.asarray(maps[layer, :, (head + 1) % H])[None]
    return np.stack([np.stack([own[i][:, perms[i, p]] for i in range(len(own))])
                     for p in range(perms.shape[1])])


def test_stage_values_equal_a_loop_through_the_seam(setup):
    params, batch = setup
    got = jax.device_get(heads.head_effects(MODEL, params, batch, OPTS))
    maps = np.asarray(jax.jit(MODEL.self_attention)(params, batch))
    valid = np.asarray(batch.valid, np.float64)
    perms = np.asarray(jax.vmap(permutation_indices, in_axes=(0, 0, None))(
        instance_keys(random_key(OPTS.seed, "heads"), batch.index), batch.valid, P))
    original = _probs(params, batch)
    for kind in heads.KINDS:
        assert got[f"{kind}_tvd"].shape == (3, L, H)
        for layer in range(L):
            for head in range(H):
                select = np.zeros((L, H), bool)
                select[layer, head] = True
                outs = []
                for new in _replacement(kind, maps, layer, head, valid, perms):
                    edited = maps.copy()
                    edited[layer, :, head] = new
                    outs.append(_probs(params, batch, HeadMaps(jnp.asarray(edited), select)))
                outs = jnp.stack(outs)  # [P, B, K]
                np.testing.assert_allclose(got[f"{kind}_tvd"][:, layer, head],
                                           np.median(tvd(outs, original[None]), 0), atol=2e-6)
                np.testing.assert_allclose(got[f"{kind}_jsd"][:, layer, head],
                                           np.median(jsd(outs, original[None]), 0), atol=2e-6)
                flips = np.mean(np.asarray(outs.argmax(-1) != original.argmax(-1)[None]), 0)
                np.testing.assert_allclose(got[f"{kind}_flip"][:, layer, head], flips)
    assert got["uniform_tvd"].max() > 1e-3  # the interventions move the output


def test_a_zeroed_map_equals_zeroed_value_weights(setup):
    params, batch = setup
    only_zero = dataclasses.replace(OPTS, head_interventions="zero")  # the same program
    got = heads.head_effects(MODEL, params, batch, only_zero)["zero_tvd"]
    original = _probs(params, batch)
    size = 16 // H
    for layer in range(L):
        for head in range(H):
            value = params["bert"]["layers"]["value"]
            cols = slice(head * size, (head + 1) * size)
            edited = jax.tree_util.tree_map(lambda x: x, params)
            edited["bert"]["layers"]["value"] = {
                "kernel": value["kernel"].at[layer, :, cols].set(0.0),
                "bias": value["bias"].at[layer, cols].set(0.0),
            }
            np.testing.assert_allclose(got[:, layer, head],
                                       tvd(_probs(edited, batch), original), atol=2e-6)


def test_the_head_map_figure_holds_its_data_inside_the_axes():
    means = np.arange(6, dtype=float).reshape(3, 2) / 10
    fig = head_report.head_map_figure([("uniform", means), ("zero", means[::-1])], "TVD")
    for ax, expected in zip(fig.axes[:2], (means, means[::-1])):
        (image,) = ax.get_images()
        np.testing.assert_array_equal(image.get_array(), expected)
        left, right, bottom, top = image.get_extent()
        x0, x1 = sorted(ax.get_xlim())
        y0, y1 = sorted(ax.get_ylim())
        assert x0 <= min(left, right) and max(left, right) <= x1
        assert y0 <= min(bottom, top) and max(bottom, top) <= y1
        assert image.get_clim() == (0.0, 0.5)


def test_the_stages_run_only_when_asked_for():
    assert "heads" not in chosen_stages(None) and "head_adv" not in chosen_stages(None)
    assert chosen_stages({"heads", "head_adv"}) == ["heads", "head_adv"]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="head_adv_layers"):
        heads.check_options(AnalysisOptions(head_adv_layers="0"))
    assert heads.layers_in_scope("last", 6) == (5,)
    assert heads.layers_in_scope("1,6", 6) == (0, 5)
    assert heads.intervention_kinds("zero, uniform") == ("uniform", "zero")


def test_the_report_has_the_tables_figures_and_verdict_rows(tmp_path):
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=100))
    model, params, _ = toy_model("binary", "transformer", vocab_size=len(data.vocab))
    limit = 4
    report = jaxattn.analyze(
        model, perturbed(params), data, out=tmp_path / "analysis", limit=limit,
        only={"heads", "head_adv"}, progress=False, samples=0, buckets=(64,),
        head_interventions="uniform", head_adv_instances=2, head_adv_steps=2, head_adv_batch_size=2,
    )
    folder = report.parent
    arrays, _ = load_stage(folder / "heads.npz")
    assert arrays["uniform_tvd"].shape == (limit, 2, 2)
    adv, _ = load_stage(folder / "head_adv.npz")
    # Only the last layer of the first two instances was searched.
    assert np.isfinite(adv["max_jsd"][:2, 1]).all() and np.isnan(adv["max_jsd"][2:]).all()
    assert np.isnan(adv["max_jsd"][:, 0]).all()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["head_adv"]["layers"] == [2] and summary["head_adv"]["instances"] == 2
    assert summary["heads"]["donor_rule"] == heads.DONOR_RULE
    uniform = np.asarray(summary["heads"]["uniform"]["mean_tvd"])
    np.testing.assert_allclose(uniform, arrays["uniform_tvd"].mean(0), rtol=1e-6)
    page = report.read_text()
    assert "Single-head interventions per layer" in page and "heads_tvd.png" in page
    assert "single-head attention replaced (Michel et al. 2019)" in page
    assert "Adversarial self-attention" in page and (folder / "head_adv_jsd.png").exists()


def test_the_table_title_names_only_the_interventions_that_ran():
    heads_tables = head_report.heads_tables
    kind = {"mean_tvd": [[0.01, 0.02]], "flip_rate": [[0.0, 0.5]]}
    base = {"n": 3, "layers": 1, "heads": 2, "num_permutations": 20,
            "donor_rule": "the next head of the same layer"}
    (title, rows), = heads_tables({"heads": {**base, "uniform": kind, "zero": kind}})
    assert title.endswith("the layer's heads") and "permutations" not in title
    assert rows == [{"layer": 1, "uniform: mean TVD (std over heads)": "0.015 (0.005)",
                     "uniform: max head": "0.020 (head 2)", "uniform: flips": "25.0%",
                     "zeroed (masked): mean TVD (std over heads)": "0.015 (0.005)",
                     "zeroed (masked): max head": "0.020 (head 2)",
                     "zeroed (masked): flips": "25.0%"}]
    (title, _), = heads_tables({"heads": {**base, "permute": kind, "donor": kind}})
    assert title.endswith("(permutations: median of 20; donor: the next head of the same layer)")
