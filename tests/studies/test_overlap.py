"""Overlapped compiling keeps the batch order and the results, and compiles each shape once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.runtime.compile_stats import CompileCounter
from jaxattn.studies.overlap import run_batches, shape_key


@pytest.mark.parametrize("workers", [0, 2])
def test_order_results_and_one_compilation_per_shape(workers):
    program = jax.jit(lambda x: jnp.cumsum(jnp.tanh(x) * 3.0, axis=-1))  # nothing compiled yet

    def _compute(batch):
        return {"y": program(batch)}

    rng = np.random.default_rng(workers)
    widths = [3, 3, 5, 5, 5, 8, 11, 11]
    batches = [rng.normal(size=(4, w)).astype(np.float32) for w in widths]
    with CompileCounter() as counted:
        got = list(run_batches(_compute, batches, workers))
    assert [b.shape for b, *_ in got] == [b.shape for b in batches]
    for (_, out, _, seconds), want in zip(got, batches):
        np.testing.assert_allclose(out["y"], np.cumsum(np.tanh(want) * 3.0, -1),
                                   rtol=1e-5, atol=1e-5)
        assert seconds >= 0
    assert counted.stats.programs == len(set(widths))
    # Each shape's program is compiled on the thread that ran its first batch.
    assert sum(stats.programs for *_, stats, _ in got) == len(set(widths))
    again = list(run_batches(_compute, batches, workers))
    assert sum(stats.programs for *_, stats, _ in again) == 0


def test_shape_key_tells_shapes_and_dtypes_apart():
    a = np.zeros((2, 3), np.float32)
    assert shape_key(a) == shape_key(np.ones((2, 3), np.float32))
    assert shape_key(a) != shape_key(np.zeros((2, 4), np.float32))
    assert shape_key(a) != shape_key(np.zeros((2, 3), np.int32))
