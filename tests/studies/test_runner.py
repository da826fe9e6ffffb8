"""The stage runner's guarantees: a cache that knows its data, narrowing that destroys nothing,
one process per run directory."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jaxattn
from jaxattn.core.errors import RunError
from jaxattn.runtime.lock import run_lock
from jaxattn.studies.jain_wallace import stages
from tests.helpers import fresh_process_xla_flags, toy_model

FAST = dict(num_permutations=4, num_adversaries=2, adv_steps=5, ig_steps=4, ig_chunk=2,
            samples=2, buckets=(64,))


@pytest.fixture(scope="module")
def setup():
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=100))
    model, params, _ = toy_model("binary", "average", vocab_size=len(data.vocab))
    return model, params, data


def _files(folder):
    return {
        p.relative_to(folder): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".jaxattn.lock"
    }


def test_a_narrower_request_leaves_the_fuller_results_intact(setup, tmp_path):
    model, params, data = setup
    out = tmp_path / "analysis"
    jaxattn.analyze(model, params, data, out=out, limit=10, progress=False, **FAST)
    before = _files(out)
    narrow = jaxattn.analyze(model, params, data, out=out, limit=5, only={"grad"},
                             progress=False, **FAST)
    after = _files(out)
    assert {k: after[k] for k in before} == before  # nothing of the fuller analysis changed
    assert narrow.parent != out and narrow.parent.parent.name == "views"
    summary = json.loads((narrow.parent / "summary.json").read_text())
    # Rows reused from the fuller results, every stage of them included.
    assert summary["n"] == 5 and "adversarial" in summary


def test_a_changed_data_row_is_recomputed(setup, tmp_path, monkeypatch):
    model, params, data = setup
    out = tmp_path / "analysis"
    jaxattn.analyze(model, params, data, out=out, limit=6, only={"grad"}, progress=False, **FAST)
    changed = dataclasses.replace(data, splits=dict(data.splits))
    test = changed.splits["test"]
    tokens = list(test.tokens)
    tokens[2] = tokens[2].copy()
    tokens[2][1] = tokens[2][1] + 1 if tokens[2][1] + 1 < len(data.vocab) else 4
    changed.splits["test"] = dataclasses.replace(test, tokens=tokens)
    calls = []
    real = stages.STAGE_SPECS["grad"]

    def counting(*args):
        calls.append(1)
        return real.compute(*args)

    monkeypatch.setitem(stages.STAGE_SPECS, "grad", dataclasses.replace(real, compute=counting))
    jaxattn.analyze(model, params, changed, out=out, limit=6, only={"grad"}, progress=False, **FAST)
    assert calls  # the digest of row 2 changed: not served from the cache
    calls.clear()
    jaxattn.analyze(model, params, changed, out=out, limit=6, only={"grad"}, progress=False, **FAST)
    assert not calls


def test_one_process_per_run_directory(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from jaxattn.runtime.lock import run_lock\n"
         f"with run_lock({str(tmp_path)!r}, 'jaxattn train'):\n"
         "    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=f"in use by pid {holder.pid}.*jaxattn train"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock
        holder.wait()
    with run_lock(tmp_path):  # a stale lock is no obstacle
        pass


def test_the_main_report_says_when_its_rows_no_longer_match_the_data(setup, tmp_path):
    model, params, data = setup
    out = tmp_path / "analysis"
    jaxattn.analyze(model, params, data, out=out, limit=6, only={"grad"}, progress=False, **FAST)
    summary = (out / "summary.json").read_bytes()
    assert "Stale" not in (out / "index.html").read_text()
    changed = dataclasses.replace(data, splits=dict(data.splits))
    test = changed.splits["test"]
    tokens = list(test.tokens)
    tokens[2] = tokens[2].copy()
    tokens[2][1] = tokens[2][1] + 1 if tokens[2][1] + 1 < len(data.vocab) else 4
    changed.splits["test"] = dataclasses.replace(test, tokens=tokens)
    fresh = jaxattn.analyze(model, params, changed, out=out, limit=6, only={"grad"},
                            progress=False, **FAST)
    assert fresh.parent.parent == out / "views"
    page = (out / "index.html").read_text()
    note = "1 of the test rows this report analysed (row 2 first) no longer hold the data"
    assert "Stale: these rows no longer match the data" in page and note in page
    assert f"{fresh.parent.relative_to(out).as_posix()}/index.html" in page
    assert (out / "tables.md").read_text().startswith("> **Stale:** " + note)
    assert (out / "summary.json").read_bytes() == summary  # the results stay as they were
    # Once the data matches the main report's rows again, its rebuild drops the mark.
    jaxattn.analyze(model, params, data, out=out, limit=6, only={"grad"}, progress=False, **FAST)
    assert "Stale" not in (out / "index.html").read_text()
    assert not (out / "stale.json").exists()


def test_batches_shrink_to_what_the_memory_budget_holds_at_the_widest_row():
    import numpy as np

    from jaxattn.data.batching import make_batch
    from jaxattn.runtime.memory import pass_bytes
    from jaxattn.studies.runner import rows_within_memory
    from tests.helpers import synthetic_test_batch

    _, split, _ = synthetic_test_batch(12, seed=0)
    indices = np.arange(12)
    model, params, _ = toy_model(encoder="transformer")
    options = stages.AnalysisOptions()
    assert rows_within_memory(model, params, split, indices, options) == 12  # tiny maps: all
    row = make_batch(split, [int(np.argmax(split.lengths))], 1, options.buckets)  # the widest
    per_row = pass_bytes(model, params, row)
    assert per_row > 0 and row.tokens.shape[1] >= split.width(indices)
    three = per_row * 3.5 / 2**30  # a budget of three rows and a half
    tight = dataclasses.replace(options, gradient_memory=three)
    assert rows_within_memory(model, params, split, indices, tight) == 3
    bilstm, bilstm_params, _ = toy_model(encoder="bilstm")
    assert rows_within_memory(bilstm, bilstm_params, split, indices, tight) == 12


ROWS_APART = r"""
import jax
jax.config.update("jax_num_cpu_devices", 2)
import re
import numpy as np
from jaxattn.runtime.distributed import shardings
from jaxattn.studies.jain_wallace import stages
from jaxattn.studies.runner import rows_on_each_device
from tests.helpers import toy_model

model, params, batch = toy_model()  # 4 rows, one of them padding
opts = stages.AnalysisOptions()
split, replicated = shardings()
stage = stages.STAGE_SPECS["loo"]
run = rows_on_each_device(stage, model, opts, split.mesh)
placed = jax.device_put(batch, split), jax.device_put(params, replicated)
program = run.lower(placed[1], placed[0], None).compile().as_text()
ops = re.findall(r"\b(all-gather|all-reduce|all-to-all|collective-permute)\b", program)
split_loo = np.asarray(run(placed[1], placed[0], None)["loo"])
one_device = jax.device_put(batch, jax.devices()[0]), jax.device_put(params, jax.devices()[0])
whole = np.asarray(stage.compute(model, one_device[1], one_device[0], opts)["loo"])
np.testing.assert_allclose(split_loo, whole, rtol=1e-5, atol=1e-7)
print(len(jax.devices()), sorted(set(ops)), float(np.abs(whole).sum()) > 0)
"""


def test_a_rows_apart_stage_runs_each_devices_rows_as_its_own_program(tmp_path):
    """Leave-one-out split over 2 CPU devices: one program per device on its own rows, with no
    collective between them (XLA's partitioner alone had every device compute every row), and
    the values of one device."""
    env = {**os.environ, "XLA_FLAGS": fresh_process_xla_flags()}
    out = subprocess.run([sys.executable, "-c", ROWS_APART], env=env, capture_output=True,
                         text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["2", "[]", "True"], out.stdout
