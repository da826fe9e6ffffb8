"""Summaries of self-attention maps, each against its definition: numbers worked out by hand on a
3-token, 2-layer case (raw attention, rollout, flow), a general max-flow solver (networkx), loops
over layers (rollout, Chefer's rule, Kobayashi's norms) and completeness (Hao's attribution)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.protocol import Batch, HeadMaps, has_layer_restart
from jaxattn.explain import attention_summaries as S
from jaxattn.models.pretrained.bert import Bert, BertConfig
from jaxattn.models.pretrained.classifier import BertAttentionClassifier
from jaxattn.models.transformer import SelfAttention
from tests.helpers import perturbed, toy_model


@pytest.fixture(scope="module")
def transformer():
    model, params, batch = toy_model("multiclass", "transformer", num_classes=3)
    return model, perturbed(params), batch


# ------------------------------------------------------------------------------------------------
# The hand-worked case: T = 3, L = 2, H = 2, one instance.
#
# Layer 1: head 0 = [[0,1,0],[0,0,1],[1,0,0]], head 1 = [[0,1,0],[0,1,0],[0,0,1]]
#   mean over heads A1 = [[0,1,0],[0,.5,.5],[.5,0,.5]];  A~1 = .5 A1 + .5 I
#   = [[.5,.5,0],[0,.75,.25],[.25,0,.75]]
# Layer 2: both heads [[0,0,1],[1,0,0],[0,1,0]] = A2;  A~2 = [[.5,0,.5],[.5,.5,0],[0,.5,.5]]
# Raw attention, row 0: layer 1 [0, 1, 0], layer 2 [0, 0, 1].
# Rollout row 0 of A~2 A~1: .5 [.5,.5,0] + .5 [.25,0,.75] = [.375, .25, .375].
# Flow from output node (2, 0): it sends .5 to (1, 0) and .5 to (1, 2). Token 0 receives
#   min(.5, .5) from (1, 0) and min(.5, .25) from (1, 2): .75. Token 1 only via (1, 0): .5.
#   Token 2 only via (1, 2): min(.5, .75) = .5.  Flow = [.75, .5, .5].
# Rollout of the mean over the 3 query rows (A~2 A~1 rows: [.375,.25,.375], [.25,.625,.125],
#   [.125,.375,.5]) = [.25, .41666, .33333].

HAND_L1 = [[[0, 1, 0], [0, 0, 1], [1, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 0, 1]]]
HAND_L2 = [[[0, 0, 1], [1, 0, 0], [0, 1, 0]]] * 2


def _hand_maps():
    return jnp.asarray([HAND_L1, HAND_L2], jnp.float32)[:, None]  # [L, B=1, H, T, T]


def test_raw_attention_and_rollout_by_hand():
    maps, valid = _hand_maps(), jnp.ones((1, 3), bool)
    first = S.query_rows(valid, "first")
    np.testing.assert_allclose(S.raw_attention_layers(maps, valid, first)[:, 0],
                               [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(S.raw_attention(maps, valid, first)[0], [0, 0, 1])
    np.testing.assert_allclose(S.rollout_layers(maps, valid, first)[:, 0],
                               [[0.5, 0.5, 0], [0.375, 0.25, 0.375]], atol=1e-7)
    np.testing.assert_allclose(S.rollout(maps, valid, S.query_rows(valid, "mean"))[0],
                               [0.25, 5 / 12, 1 / 3], atol=1e-6)


def test_flow_by_hand():
    maps, valid = _hand_maps(), jnp.ones((1, 3), bool)
    flow = S.attention_flow(maps, valid, S.query_rows(valid, "first"))
    np.testing.assert_allclose(flow[0], [0.75, 0.5, 0.5], atol=1e-6)


def _random_maps(key, shape, valid):
    scores = 2.0 * jax.random.normal(key, shape)
    keys = valid[None, :, None, None, :]
    weights = jnp.where(keys, jnp.exp(scores), 0.0)
    return weights / jnp.maximum(weights.sum(-1, keepdims=True), 1e-30)


@pytest.mark.parametrize("query", ["first", "mean", 2])
def test_flow_matches_a_general_max_flow_solver(query):
    nx = pytest.importorskip("networkx")
    valid = jnp.asarray([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool)
    maps = _random_maps(jax.random.key(3), (3, 3, 2, 5, 5), valid)
    rows = S.query_rows(valid, query)
    got = S.attention_flow(maps, valid, rows)
    mixed = np.asarray(S.residual_attention(maps), np.float64)
    n_layers, b, _, t, _ = maps.shape
    for i in range(b):
        graph = nx.DiGraph()
        for q in range(t):
            if rows[i, q] > 0:
                graph.add_edge("s", (n_layers, q), capacity=float(rows[i, q]))
        for level in range(n_layers):
            for q in range(t):
                for k in range(t):
                    if mixed[level, i, q, k] > 0:
                        graph.add_edge((level + 1, q), (level, k),
                                       capacity=float(mixed[level, i, q, k]))
        for j in range(t):
            expected = 0.0
            if valid[i, j] and graph.has_node("s") and graph.has_node((0, j)):
                expected = nx.maximum_flow_value(graph, "s", (0, j))
            assert got[i, j] == pytest.approx(expected, abs=1e-5), (i, j)


def test_flow_refuses_long_inputs_in_one_line():
    valid = jnp.ones((1, 5), bool)
    maps = _random_maps(jax.random.key(0), (1, 1, 1, 5, 5), valid)
    with pytest.raises(S.FlowLengthError, match=r"^attention flow: inputs of length 5 exceed "
                       r"max_length 4 [^\n]*$"):
        S.attention_flow(maps, valid, S.query_rows(valid), max_length=4)


def test_rollout_is_the_product_of_the_residual_maps(transformer):
    model, params, batch = transformer
    maps = np.asarray(model.self_attention(params, batch), np.float64)
    rows = S.query_rows(batch.valid, "mean")
    got = S.rollout_layers(jnp.asarray(maps), batch.valid, rows)
    n_layers, b, _, t, _ = maps.shape
    for i in range(b):
        product = np.eye(t)
        for level in range(n_layers):
            mixed = 0.5 * maps[level, i].mean(0) + 0.5 * np.eye(t)
            product = (mixed / mixed.sum(-1, keepdims=True)) @ product
            expected = np.where(batch.valid[i], np.asarray(rows[i]) @ product, 0.0)
            np.testing.assert_allclose(got[level, i], expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Gradient-weighted attention (Chefer et al.) and attention attribution (Hao et al.)


def _layer_gradient_by_hand(model, params, batch, maps, layer, target, output="logit"):
    """d score / d maps[layer] with only ``layer`` given: the other layers compute their own."""
    n_layers, _, n_heads = maps.shape[:3]
    select = np.zeros((n_layers, n_heads), bool)
    select[layer] = True

    def score(m):
        full = maps.at[layer].set(m)
        logits = model.logits(params, model.encode(params, batch, heads=HeadMaps(full, select)))
        return S.target_score(logits, target, output).sum()

    return np.asarray(jax.grad(score)(maps[layer]), np.float64)


def test_gradient_weighted_follows_chefers_rule(transformer):
    model, params, batch = transformer
    maps = model.self_attention(params, batch)
    rows = S.query_rows(batch.valid, "first")
    # Jitted, as the analyses call it (through summarize): one program instead of an op-by-op
    # run of L vmapped backward passes, which took most of this test's time.
    got = jax.jit(
        lambda m: S.gradient_weighted_layers(S.seam_logits(model, params, batch), m, batch.valid,
                                             rows)
    )(maps)
    target = S.predicted_class(model.logits(params, model.encode(params, batch)))
    n_layers, b, _, t, _ = maps.shape
    relevance = np.broadcast_to(np.eye(t), (b, t, t)).copy()
    for layer in range(n_layers):
        grad = _layer_gradient_by_hand(model, params, batch, maps, layer, target)
        weighted = np.clip(grad * np.asarray(maps[layer]), 0, None).mean(1)  # [B, T, T]
        for i in range(b):
            relevance[i] = relevance[i] + weighted[i] @ relevance[i]
            expected = np.where(batch.valid[i], np.asarray(rows[i]) @ relevance[i], 0.0)
            np.testing.assert_allclose(got[layer, i], expected, rtol=1e-4, atol=1e-6)
    assert np.abs(np.asarray(got[-1, :-1]) - np.eye(t)[0]).max() > 1e-4  # the gradients count


def test_gradients_with_later_attention_fixed_are_one_backward_pass(transformer):
    model, params, batch = transformer
    maps = model.self_attention(params, batch)
    target = jnp.zeros(batch.tokens.shape[0], jnp.int32)
    fixed = jax.jit(lambda m: S.layer_gradients(S.seam_logits(model, params, batch), m, target,
                                                downstream=False))(maps)
    every = jnp.ones(maps.shape[:1] + maps.shape[2:3], bool)

    def score(m):
        logits = model.logits(params, model.encode(params, batch, heads=HeadMaps(m, every)))
        return S.target_score(logits, target).sum()

    np.testing.assert_allclose(fixed, jax.grad(score)(maps), atol=1e-6)
    # The last layer has nothing downstream: both conventions agree there.
    recomputed = jax.jit(
        lambda m: S.layer_gradients(S.seam_logits(model, params, batch), m, target)
    )(maps)
    np.testing.assert_allclose(recomputed[-1], fixed[-1], atol=1e-6)


def test_attention_attribution_is_a_riemann_sum_of_gradients(transformer):
    model, params, batch = transformer
    maps = model.self_attention(params, batch)
    rows = S.query_rows(batch.valid, "first")
    target = S.predicted_class(model.logits(params, model.encode(params, batch)))
    got = jax.jit(
        lambda m: S.attention_attribution(S.seam_logits(model, params, batch), m, batch.valid,
                                          rows, steps=3)
    )(maps)
    for layer in range(maps.shape[0]):
        grads = [_layer_gradient_by_hand(model, params, batch, maps.at[layer].multiply(k / 3),
                                         layer, target, "prob") for k in (1, 2, 3)]
        expected = np.asarray(maps[layer]) * np.mean(grads, axis=0)
        np.testing.assert_allclose(got.maps[layer], expected, atol=1e-6)
    tokens = np.einsum("bi,lbhij->lbj", np.asarray(rows), np.asarray(got.maps))
    np.testing.assert_allclose(got.tokens, np.where(batch.valid, tokens, 0.0), atol=1e-7)
    np.testing.assert_allclose(got.total, np.asarray(got.tokens).sum(0), atol=1e-7)


def test_chunks_bound_memory_without_changing_the_results(transformer):
    # Points / layers differentiated a few at a time (a last chunk padded with points of weight
    # 0) give what differentiating all of them at once gives; keep_maps=False only drops maps.
    model, params, batch = transformer
    whole = S.attribute_attention(model, params, batch, steps=5)
    for chunk in (1, 2, 5):
        part = S.attribute_attention(model, params, batch, steps=5, chunk=chunk, keep_maps=False)
        assert part.maps is None
        np.testing.assert_allclose(part.tokens, whole.tokens, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(part.gap, whole.gap, rtol=1e-6, atol=1e-7)
    all_layers = S.summarize(model, params, batch)
    one_layer = S.summarize(model, params, batch, chunk=1)
    np.testing.assert_allclose(one_layer.gradient_weighted_layers,
                               all_layers.gradient_weighted_layers, rtol=1e-5, atol=1e-7)


def test_attention_attribution_is_complete(transformer):
    # The Transformer's feed-forward ReLU makes the integrand piecewise smooth: the Riemann sum
    # converges as 1 / m, to within 1% at 256 steps here.
    model, params, batch = transformer
    got = S.attribute_attention(model, params, batch, steps=256, rule="midpoint")
    sums = np.asarray(got.maps).sum(axis=(2, 3, 4))  # [L, B]
    assert np.abs(np.asarray(got.gap)[:, :-1]).min() > 1e-3  # something to attribute
    np.testing.assert_allclose(sums, got.gap, rtol=1e-2, atol=3e-4)


def test_attention_attribution_is_complete_for_a_smooth_model():
    # BERT (GELU) is smooth in the maps: the midpoint rule's error falls as 1 / m^2.
    batch = _bert_batch()
    params = perturbed(BERT.init(jax.random.key(0), batch), scale=0.2)
    got = S.attribute_attention(BERT, params, batch, steps=64, rule="midpoint")
    sums = np.asarray(got.maps).sum(axis=(2, 3, 4))
    assert np.abs(np.asarray(got.gap)).min() > 1e-3
    np.testing.assert_allclose(sums, got.gap, rtol=1e-3, atol=2e-5)


# ------------------------------------------------------------------------------------------------
# Norm-based (Kobayashi et al.)


def test_transformer_norm_inputs_decompose_the_attention_block(transformer):
    model, params, batch = transformer
    inputs = S.transformer_norm_inputs(model, params, batch)
    maps = model.self_attention(params, batch)
    settings = model.network.settings
    encoder = params["text_encoder"]
    # sum_j sum_h a^h_ij f_h(x_j) + b_O is the attention block's output on LN1(x).
    for layer in range(maps.shape[0]):
        p = encoder[f"blocks_{layer}"]
        x = np.asarray(inputs.residual[layer])
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        ln = jax.tree_util.tree_map(np.asarray, p["norm1"])
        normed = (x - mean) / np.sqrt(var + 1e-5) * ln["scale"] + ln["bias"]
        out, weights = SelfAttention(settings.width, settings.heads).apply(
            {"params": p["attention"]}, jnp.asarray(normed), jnp.asarray(batch.valid, bool))
        np.testing.assert_allclose(weights, maps[layer], atol=1e-6)
        summed = jnp.einsum("bhij,bhjw->biw", maps[layer], inputs.transformed[layer])
        np.testing.assert_allclose(np.asarray(summed) + np.asarray(inputs.out_bias[layer]), out,
                                   atol=1e-5)


def _norms_by_hand(maps, inputs, rows, valid):
    maps = np.asarray(maps, np.float64)
    f = np.asarray(inputs.transformed, np.float64)
    x = np.asarray(inputs.residual, np.float64)
    n_layers, b, n_heads, t, _ = maps.shape
    plain, resid, ln = (np.zeros((n_layers, b, t)) for _ in range(3))
    for level in range(n_layers):
        for i in range(b):
            for q in range(t):
                terms = [sum(maps[level, i, h, q, k] * f[level, i, h, k] for h in range(n_heads))
                         + (x[level, i, q] if k == q else 0.0) for k in range(t)]
                total = sum(terms) + np.asarray(inputs.out_bias[level])
                std = np.sqrt(total.var() + inputs.ln_eps)
                for k in range(t):
                    if not valid[i, k]:
                        continue
                    w = rows[i, q]
                    attended = terms[k] - (x[level, i, q] if k == q else 0.0)
                    plain[level, i, k] += w * np.linalg.norm(attended)
                    resid[level, i, k] += w * np.linalg.norm(terms[k])
                    if inputs.ln_scale is not None:
                        scale = np.asarray(inputs.ln_scale[level], np.float64)
                        share = scale * (terms[k] - terms[k].mean()) / std
                        ln[level, i, k] += w * np.linalg.norm(share)
    return plain, resid, ln


def test_norm_based_transformer_by_hand(transformer):
    model, params, batch = transformer
    maps = model.self_attention(params, batch)
    rows = S.query_rows(batch.valid, "mean")
    inputs = S.transformer_norm_inputs(model, params, batch)
    plain, resid, _ = _norms_by_hand(maps, inputs, np.asarray(rows), np.asarray(batch.valid))
    # Queries all at once, or a few at a time (the last block padded when 3 does not divide T).
    for chunk in (None, 1, 3):
        got = S.norm_based(maps, inputs, batch.valid, rows, chunk=chunk)
        np.testing.assert_allclose(got.attention, plain, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.residual, resid, rtol=1e-5, atol=1e-6)
        assert got.residual_ln is None  # pre-LN: no LayerNorm right after the residual sum


BERT = BertAttentionClassifier(
    Bert(BertConfig(vocab_size=30, hidden_size=16, num_layers=2, num_heads=2,
                    intermediate_size=20, max_position_embeddings=10)),
    task="multiclass",
    num_classes=3,
)


def _bert_batch():
    tokens = jnp.array([[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]], jnp.int32)
    valid = tokens > 0
    return Batch(tokens=tokens, mask=valid & (tokens != 2) & (tokens != 3), valid=valid,
                 labels=jnp.array([0, 2]), weights=jnp.ones(2), index=jnp.arange(2))


def test_bert_summaries_through_the_same_interface():
    batch = _bert_batch()
    params = perturbed(BERT.init(jax.random.key(0), batch), scale=0.2)
    maps = BERT.self_attention(params, batch)
    rows = S.query_rows(batch.valid, "first")
    inputs = S.bert_norm_inputs(BERT, params, batch)
    plain, resid, ln = _norms_by_hand(maps, inputs, np.asarray(rows), np.asarray(batch.valid))
    for chunk in (None, 4):
        got = S.norm_based(maps, inputs, batch.valid, rows, chunk=chunk)
        np.testing.assert_allclose(got.attention, plain, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got.residual_ln, ln, rtol=1e-4, atol=1e-6)
    summaries = S.summarize(BERT, params, batch)
    assert summaries.gradient_weighted.shape == batch.tokens.shape
    np.testing.assert_allclose(summaries.rollout, S.rollout(maps, batch.valid, rows), atol=1e-6)
    # The seam's own maps give the model's own logits.
    logits = S.seam_logits(BERT, params, batch)(maps)
    own = BERT.decode(params, enc := BERT.encode_embedded(
        params, batch, BERT.embed(params, batch.tokens)), BERT.attend(params, enc))
    np.testing.assert_allclose(logits, own, atol=1e-5)


def _restart_cases():
    batch = _bert_batch()
    yield "bert", BERT, perturbed(BERT.init(jax.random.key(0), batch), scale=0.2), batch
    model, params, batch = toy_model("multiclass", "transformer", num_classes=3)
    yield "transformer", model, perturbed(params), batch


@pytest.mark.parametrize("case", ["bert", "transformer"])
def test_restarts_at_each_layer_give_the_seams_results(case):
    # Chefer's and Hao's per-layer passes start at the differentiated layer (each restart traced
    # at its own static layer, the layers below it never run) and give what the whole encoder
    # through the seam gives.
    _, model, params, batch = next(c for c in _restart_cases() if c[0] == case)
    assert has_layer_restart(model) and S.layer_logits(model, params, batch)[1] is not None
    maps = model.self_attention(params, batch)
    rows = S.query_rows(batch.valid, "first")
    seam = S.seam_logits(model, params, batch)
    chefer = jax.jit(lambda m: S.gradient_weighted_layers(seam, m, batch.valid, rows))(maps)
    np.testing.assert_allclose(S.summarize(model, params, batch).gradient_weighted_layers,
                               chefer, rtol=1e-5, atol=1e-6)
    hao = jax.jit(lambda m: S.attention_attribution(seam, m, batch.valid, rows, steps=5))(maps)
    fast = S.attribute_attention(model, params, batch, steps=5, chunk=2)
    np.testing.assert_allclose(fast.maps, hao.maps, rtol=1e-5, atol=1e-7)
    # a gap is a difference of two probabilities: float32 rounds each to 6e-8 near 1
    np.testing.assert_allclose(fast.gap, hao.gap, rtol=1e-5, atol=2.5e-7)
    assert np.abs(np.asarray(hao.maps)).max() > 1e-4  # something attributed


def test_query_rows():
    valid = jnp.asarray([[1, 1, 1, 0], [0, 0, 0, 0]], bool)
    np.testing.assert_allclose(S.query_rows(valid, "first"), [[1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(S.query_rows(valid, 1), [[0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(S.query_rows(valid, "mean"),
                               [[1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="outside"):
        S.query_rows(valid, 4)


def test_seam_logits_refuses_a_model_without_the_seam():
    model, params, batch = toy_model("binary", "bilstm")
    with pytest.raises(TypeError, match="self-attention seam"):
        S.seam_logits(model, params, batch)
