"""Head interventions against re-running the model with one head's maps edited by hand, head by
head, and the adversarial head search against its own stated result."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.metrics import jsd, tvd
from jaxattn.core.protocol import HeadMaps, has_layer_restart
from jaxattn.explain import head_interventions as HI
from jaxattn.explain.interventions import instance_keys, permutation_indices
from tests.helpers import perturbed, toy_model

P = 4


@pytest.fixture(scope="module")
def setup():
    model, params, batch = toy_model("multiclass", "transformer", num_classes=3)
    return model, perturbed(params), batch


def _edited_by_hand(maps, layer, head, kind, valid, donor=(0, 1), perms=None):
    """[L, B, H, T, T] copies of ``maps`` with head (layer, head) edited (P of them for permute)."""
    maps = np.asarray(maps)
    b, t = valid.shape
    if kind == "permute":
        out = []
        for p in range(perms.shape[1]):
            edited = maps.copy()
            for i in range(b):
                edited[layer, i, head] = maps[layer, i, head][:, perms[i, p]]
            out.append(edited)
        return out
    edited = maps.copy()
    if kind == "uniform":
        for i in range(b):
            n = valid[i].sum()
            for q in range(t):
                edited[layer, i, head, q] = valid[i] / n if n else 0.0
    elif kind == "zero":
        edited[layer, :, head] = 0.0
    else:
        edited[layer, :, head] = maps[donor[0], :, donor[1]]
    return [edited]


@pytest.mark.parametrize("kind", HI.KINDS)
def test_each_head_against_a_loop(setup, kind):
    model, params, batch = setup
    key = jax.random.key(7)
    got = HI.intervene_heads(model, params, batch, kind, key=key, num_permutations=P,
                             donor=jnp.asarray([0, 1]), chunk=3)
    maps = model.self_attention(params, batch)
    n_layers, b, n_heads = maps.shape[:3]
    valid = np.asarray(batch.valid)
    original = model.probs(model.logits(params, model.encode(params, batch)))
    perms = None
    if kind == "permute":
        perms = np.asarray(jax.vmap(permutation_indices, in_axes=(0, 0, None))(
            instance_keys(key, batch.index), jnp.asarray(valid), P))
    for layer in range(n_layers):
        for head in range(n_heads):
            select = np.zeros((n_layers, n_heads), bool)
            select[layer, head] = True
            outs = []
            for edited in _edited_by_hand(maps, layer, head, kind, valid, perms=perms):
                enc = model.encode(params, batch, heads=HeadMaps(jnp.asarray(edited), select))
                outs.append(model.probs(model.logits(params, enc)))
            outs = jnp.stack(outs)  # [P, B, K]
            np.testing.assert_allclose(got.tvd[:, layer, head],
                                       np.median(tvd(outs, original[None]), 0), atol=1e-6)
            np.testing.assert_allclose(got.jsd[:, layer, head],
                                       np.median(jsd(outs, original[None]), 0), atol=1e-6)
            flips = np.asarray(outs.argmax(-1) != original.argmax(-1)[None]).mean(0)
            np.testing.assert_allclose(got.flip[:, layer, head], flips)
    if kind == "donor":
        assert np.abs(np.asarray(got.tvd[:, 0, 1])).max() < 1e-6  # the donor replaced by itself
    else:
        assert float(got.tvd[:-1].min()) > 0


def test_chunking_does_not_change_the_result(setup):
    model, params, batch = setup
    whole = HI.intervene_heads(model, params, batch, "zero")
    one_by_one = HI.intervene_heads(model, params, batch, "zero", chunk=1)
    np.testing.assert_allclose(whole.tvd, one_by_one.tvd, atol=1e-7)


def test_permutations_move_weights_among_valid_keys_only(setup):
    _, _, batch = setup
    valid = jnp.asarray(batch.valid)
    maps = HI.uniform_maps(valid) * jnp.arange(1, valid.shape[1] + 1, dtype=jnp.float32)[None, None]
    maps = jnp.where(valid[:, None, :], maps, 0.0)
    perms = jax.vmap(permutation_indices, in_axes=(0, 0, None))(
        instance_keys(jax.random.key(0), batch.index), valid, 3)
    permuted = HI.permute_keys(maps, perms)  # [P, B, T, T]
    assert np.all(np.asarray(permuted)[:, ~np.asarray(valid)[:, None, :].repeat(
        valid.shape[1], 1)] == 0)
    np.testing.assert_allclose(np.sort(np.asarray(permuted), -1),
                               np.broadcast_to(np.sort(np.asarray(maps), -1), permuted.shape))


@pytest.mark.parametrize("scope", ["head", "layer"])
def test_adversarial_head_search_reports_what_it_found(setup, scope):
    model, params, batch = setup
    layer, head, epsilon = 1, 1, 0.05
    got = HI.search_adversarial_heads(model, params, batch, jax.random.key(3), layer, head,
                                      scope=scope, steps=40, epsilon=epsilon)
    maps = model.self_attention(params, batch)
    n_layers, b, n_heads = maps.shape[:3]
    select = np.zeros((n_layers, n_heads), bool)
    select[layer] = True if scope == "layer" else np.arange(n_heads) == head
    full = maps.at[layer].set(got.best_maps)
    out = model.probs(model.logits(params, model.encode(params, batch, heads=HeadMaps(full,
                                                                                       select))))
    original = model.probs(model.logits(params, model.encode(params, batch)))
    np.testing.assert_allclose(got.best_tvd, tvd(out, original), atol=1e-5)
    assert np.all(np.asarray(got.best_tvd) <= epsilon + 1e-6)
    # max_jsd is the mean row JSD over the heads in scope and the valid query rows.
    valid = np.asarray(batch.valid)
    heads = range(n_heads) if scope == "layer" else [head]
    for i in range(b):
        rows = [(h, q) for h in heads for q in range(valid.shape[1]) if valid[i, q]]
        expected = np.mean([float(jsd(got.best_maps[i, h, q], maps[layer, i, h, q]))
                            for h, q in rows]) if rows else 0.0
        assert float(got.max_jsd[i]) == pytest.approx(expected, abs=1e-5)
    untouched = [h for h in range(n_heads) if h not in heads]
    for h in untouched:
        np.testing.assert_allclose(got.best_maps[:, h], maps[layer, :, h], atol=1e-6)
    found, max_jsd = np.asarray(got.found)[:-1], np.asarray(got.max_jsd)  # last row: padding
    assert found.any() and max_jsd[:-1][found].min() > 0.01
    assert np.all(max_jsd[:-1][~found] == 0)  # the original attention, JSD 0


class _SeamOnly:
    """``model`` without its restart methods: the interventions take the generic path."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        if name in ("layer_inputs", "encode_from_layer"):
            raise AttributeError(name)
        return getattr(self._model, name)

    def __hash__(self):
        return hash((_SeamOnly, self._model))

    def __eq__(self, other):
        return isinstance(other, _SeamOnly) and other._model == self._model


def test_the_transformer_restarts_at_the_intervened_layer_with_the_same_results(setup):
    model, params, batch = setup
    assert has_layer_restart(model) and not has_layer_restart(_SeamOnly(model))
    states, maps = model.layer_inputs(params, batch)
    np.testing.assert_allclose(maps, model.self_attention(params, batch), atol=1e-6)
    whole = model.encode(params, batch).hidden
    for layer in range(maps.shape[0]):  # restarting from a layer's own states changes nothing
        again = model.encode_from_layer(params, batch, states[layer], layer).hidden
        np.testing.assert_allclose(again, whole, atol=2e-5)
    key = jax.random.key(3)
    donor = jnp.asarray([0, 1])
    fast = HI.intervene_heads_all(model, params, batch, key=key, num_permutations=P, donor=donor)
    slow = HI.intervene_heads_all(_SeamOnly(model), params, batch, key=key, num_permutations=P,
                                  donor=donor)
    for kind in HI.KINDS:
        np.testing.assert_allclose(fast[kind].tvd, slow[kind].tvd, atol=2e-6)
        np.testing.assert_allclose(fast[kind].flip, slow[kind].flip)
    with pytest.raises(TypeError, match="needs the Transformer encoder"):
        toy_model("binary", "bilstm")[0].layer_inputs(params, batch)
