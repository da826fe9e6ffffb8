"""Chunks of differentiated passes capped by what their attention maps would hold."""

import jax.numpy as jnp
import numpy as np

from jaxattn.runtime import memory
from jaxattn.runtime.memory import (
    SAVED_PER_HIDDEN,
    SAVED_PER_MAP,
    attention_bytes,
    deletion_rows_cap,
    pass_bytes,
    passes_at_once,
    shape_of,
    sum_in_chunks,
)
from tests.helpers import toy_model


def test_attention_bytes_counts_one_rows_maps_of_every_layer_and_head():
    model, params, batch = toy_model(encoder="transformer")
    maps = model.self_attention(params, batch)  # [L, B, H, T, T]
    n_layers, _, heads, t, _ = maps.shape
    assert attention_bytes(model, params, batch) == n_layers * heads * t * t * 4
    bilstm, bilstm_params, _ = toy_model(encoder="bilstm")
    assert attention_bytes(bilstm, bilstm_params, batch) == 0


def test_a_pass_counts_its_maps_and_every_layers_hidden_states():
    model, params, batch = toy_model(encoder="transformer")
    maps = model.self_attention(params, batch)  # [L, B, H, T, T]
    n_layers, _, _, t, _ = maps.shape
    width = model.encode(params, batch).hidden.shape[-1]
    assert pass_bytes(model, params, batch) == (
        SAVED_PER_MAP * attention_bytes(model, params, batch)
        + SAVED_PER_HIDDEN * n_layers * t * width * 4)
    bilstm, bilstm_params, _ = toy_model(encoder="bilstm")
    assert pass_bytes(bilstm, bilstm_params, batch) == 0


def test_the_constants_fit_the_measured_peaks():
    # IG on all-MiniLM-L6-v2 (6 layers, 12 heads, E = 384), MiB per pass and row over the
    # forward's floor (benchmarks/RESULTS.md): 16.8 at 64 pieces, 316.7 at 512. The model
    # must not undercount either, nor overcount by more than a tenth.
    for t, measured in ((64, 16.8), (512, 316.7)):
        counted = (SAVED_PER_MAP * 6 * 12 * t * t * 4 + SAVED_PER_HIDDEN * 6 * t * 384 * 4) / 2**20
        assert measured <= counted <= 1.1 * measured, (t, counted)


def test_sum_in_chunks_is_the_sum_over_every_point():
    points = jnp.arange(7, dtype=jnp.float32) / 7

    def fn(a):  # a pytree of two arrays per point
        return {"square": a**2 * jnp.ones(3), "sine": jnp.sin(a)}

    want = {"square": float((np.arange(7) / 7) ** 2 @ np.ones(7)) * np.ones(3),
            "sine": np.sin(np.arange(7) / 7).sum()}
    for chunk in (1, 3, 7, 10):  # 3 pads the last chunk with two points of weight 0
        got = sum_in_chunks(fn, points, chunk)
        np.testing.assert_allclose(got["square"], want["square"], rtol=1e-6)
        np.testing.assert_allclose(got["sine"], want["sine"], rtol=1e-6)


def test_shapes_are_traced_once_per_model_and_batch_shape():
    model, params, batch = toy_model(encoder="transformer")
    traced = []

    def fn(p, b):
        traced.append(b.tokens.shape)
        return model.self_attention(p, b)

    first = shape_of("test", fn, model, params, batch)
    assert shape_of("test", fn, model, params, batch) == first and len(traced) == 1
    wider = batch.replace(**{k: np.pad(getattr(batch, k), ((0, 0), (0, 2)))
                             for k in ("tokens", "mask", "valid")})
    assert shape_of("test", fn, model, params, wider).shape[-1] == first.shape[-1] + 2
    assert len(traced) == 2


def test_passes_at_once_fits_the_budget():
    row = 1000
    # 3 passes of 4 rows fit 12 rows' saved activations, 4 do not.
    budget = row * 4 * 3.5 / 2**30  # GiB
    assert passes_at_once(10, 4, row, budget) == 3
    assert passes_at_once(2, 4, row, budget) == 2  # never more than asked
    assert passes_at_once(10, 4, row, 1 / 2**30) == 1  # at least one (a budget of one byte)
    assert passes_at_once(10, 4, 0, 1.0) == 10  # no self-attention: as asked


def test_deletion_rows_cap_fits_the_map_budget(monkeypatch):
    # MiniLM's shape (6 layers, 12 heads): 2 shortened rows at 512 pieces, 8 at 256.
    assert memory.DELETION_MAP_BYTES // (6 * 12 * 512 * 512 * 4) == 2
    assert memory.DELETION_MAP_BYTES // (6 * 12 * 256 * 256 * 4) == 8
    model, params, batch = toy_model(encoder="transformer")
    row = attention_bytes(model, params, batch)
    monkeypatch.setattr(memory, "DELETION_MAP_BYTES", int(row * 3.5))
    assert deletion_rows_cap(model, params, batch) == 3
    monkeypatch.setattr(memory, "DELETION_MAP_BYTES", 1)
    assert deletion_rows_cap(model, params, batch) == 1  # at least one
    bilstm, bilstm_params, _ = toy_model(encoder="bilstm")
    assert deletion_rows_cap(bilstm, bilstm_params, batch) is None  # no maps: no cap


def test_leave_one_out_capped_to_one_row_a_call_gives_the_same_scores(monkeypatch):
    from jaxattn.studies.jain_wallace.stages import (
        AnalysisOptions,
        leave_one_out,
        leave_one_out_words,
    )

    model, params, batch = toy_model(encoder="transformer")
    opts = AnalysisOptions(loo_chunk=2)
    want = {**leave_one_out(model, params, batch, opts),
            **leave_one_out_words(model, params, batch, opts)}
    monkeypatch.setattr(memory, "DELETION_MAP_BYTES", 1)
    got = {**leave_one_out(model, params, batch, opts),
           **leave_one_out_words(model, params, batch, opts)}
    for key, value in want.items():
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(value), rtol=1e-5,
                                   atol=1e-7, err_msg=key)
        assert np.abs(np.asarray(value)).sum() > 0, key


def test_ig_and_the_summaries_run_in_chunks_a_small_budget_allows():
    # A budget below one pass: every chunk is 1, and the results are those of one big chunk.
    from jaxattn.studies.jain_wallace.stages import AnalysisOptions, integrated_gradients
    from jaxattn.studies.self_attention.summaries import summaries

    model, params, batch = toy_model(encoder="transformer")
    small, large = AnalysisOptions(gradient_memory=1e-9), AnalysisOptions(gradient_memory=100.0)
    for stage in (integrated_gradients, summaries):
        got, want = stage(model, params, batch, small), stage(model, params, batch, large)
        for key, value in want.items():
            np.testing.assert_allclose(np.asarray(got[key], float), np.asarray(value, float),
                                       rtol=1e-4, atol=1e-6, err_msg=key)
