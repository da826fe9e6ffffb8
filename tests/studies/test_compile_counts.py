"""Each stage compiles a bounded number of programs: one per bucket, none when run again."""

from __future__ import annotations

import numpy as np
import pytest

import jaxattn
from jaxattn.runtime.compile_stats import CompileCounter
from jaxattn.studies.jain_wallace import stages
from jaxattn.studies.jain_wallace.analyze import analysis_options
from jaxattn.studies.runner import compute_stage
from tests.helpers import toy_model

BUCKETS = (16, 32, 64)
FAST = dict(num_permutations=4, num_adversaries=2, adv_steps=3, ig_steps=4, ig_chunk=2,
            loo_chunk=2, batch_size=16, loo_batch_size=16, ig_batch_size=16,
            perm_batch_size=16, adv_batch_size=16, buckets=BUCKETS)
# Programs a stage may compile besides one per bucket (shape-independent set-up such as the
# random key of its seed).
SET_UP = {"perm": 2, "adv": 2}


@pytest.fixture(scope="module")
def setup():
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=60))
    model, params, _ = toy_model("binary", "bilstm", vocab_size=len(data.vocab))
    return model, params, data.splits["test"]


@pytest.mark.parametrize("name", ["attention", "grad", "loo", "ig", "perm", "adv"])
def test_one_program_per_bucket_and_none_the_second_time(setup, name):
    model, params, split = setup
    opts = analysis_options(FAST)
    indices = np.arange(40)
    stage = stages.STAGE_SPECS[name]
    _, first = compute_stage(stage, model, params, split, indices, opts, progress=False)
    buckets = first["programs_per_bucket"]
    assert len(buckets) >= 2  # the rows span several buckets
    assert first["programs"] <= len(buckets) + SET_UP.get(name, 0), first
    assert all(n >= 1 for n in buckets.values()) or name in SET_UP
    assert first["compile_seconds"] > 0
    assert 0 <= first["compute_seconds"] <= first["seconds"]
    _, second = compute_stage(stage, model, params, split, indices, opts, progress=False)
    assert second["programs"] == 0 and second["compile_seconds"] == 0


def test_counters_nest_and_count_only_while_open():
    import jax

    x = np.ones(7, np.float32)  # a NumPy input: no program is compiled to make it
    with CompileCounter() as outer:
        jax.jit(lambda x: x * 2.0)(x)
        with CompileCounter() as inner:
            jax.jit(lambda x: x - 1.0)(x)
    jax.jit(lambda x: x + 3.0)(x)
    assert inner.stats.programs == 1
    assert outer.stats.programs == 2
    assert outer.stats.compiled == 2 and outer.stats.cache_hits == 0


def test_analyze_compiles_for_at_most_max_buckets(setup, tmp_path):
    import json

    model, params, split = setup
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=60))
    report = jaxattn.analyze(model, params, data, out=tmp_path / "a", limit=40, only={"grad"},
                             progress=False, **{**FAST, "buckets": (12, 16, 20, 24, 28, 32, 64),
                                                "max_buckets": 2})
    summary = json.loads((report.parent / "summary.json").read_text())
    for name in ("attention", "grad"):
        assert 1 <= len(summary["compile"][name]["programs_per_bucket"]) <= 2
