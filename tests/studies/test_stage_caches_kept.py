"""Stage files written by an earlier layout of the package are still reused: their keys hold
what the results depend on (stage, version, options, parameters, rows), not where the code
lives. The fixture is a tiny synthetic run analysed before the package moved into layers.

Erasure is the one exception: its version went from 1 to 2 when many-weight erasure came to
remove up to all n weights by default (``erasure_limit = "all"``, where version 1 stopped at
n - 1), so its file of that layout is recomputed on purpose. ERASER is recomputed too: its key
gained the deletion unit (``eraser_unit``) when it came to delete whole words on word pieces; on
this word-vocabulary run its figures must come out exactly as before. So is plausibility: its
version went to 2 when rows with an undefined importance (NaN: attention flow beyond its length
limit) came to be left out; this run has none, so its figures too are unchanged. Every other
stage must be reused."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from jaxattn.studies.jain_wallace import stages
from jaxattn.studies.jain_wallace.analyze import analyze_run

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_before_layout"
OPTIONS = dict(num_permutations=4, num_adversaries=2, adv_steps=4, ig_steps=2, ig_chunk=2,
               samples=2, buckets=(64,))  # as the fixture was analysed


def test_a_run_analysed_before_the_move_recomputes_no_stage(tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    stage_files = sorted((run / "analysis").glob("*.npz"))
    before = {p.name: p.read_bytes() for p in stage_files}
    assert {"attention.npz", "grad.npz", "loo.npz", "ig.npz", "perm.npz", "adv.npz",
            "erasure.npz", "eraser.npz", "norm.npz", "plausibility.npz"} <= set(before)

    def recomputed(*args, **kwargs):
        raise AssertionError("a stage of the earlier layout was recomputed")

    # Erasure's and plausibility's versions and ERASER's key changed after the fixture was
    # written (module docstring): they alone run.
    recomputed_on_purpose = {"erasure.npz", "eraser.npz", "plausibility.npz"}
    for name in stages.STAGE_SPECS:
        if f"{name}.npz" in recomputed_on_purpose:
            continue
        monkeypatch.setitem(stages.STAGE_SPECS, name,
                            dataclasses.replace(stages.STAGE_SPECS[name], compute=recomputed))
    analyze_run(run, limit=6, progress=False, **OPTIONS)
    after = {p.name: p.read_bytes() for p in sorted((run / "analysis").glob("*.npz"))}
    kept = set(before) - recomputed_on_purpose
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert after["erasure.npz"] != before["erasure.npz"]
    with np.load(run / "analysis" / "erasure.npz") as new:
        meta = json.loads(str(new["__meta__"]))
    assert meta["options"]["erasure_limit"] == "all"
    for name in ("eraser.npz", "plausibility.npz"):
        with np.load(run / "analysis" / name) as new, np.load(FIXTURE / "analysis" / name) as old:
            figures = [k for k in old.files if k != "__meta__"]
            assert figures and set(figures) <= set(new.files)
            # ERASER: one token per word, so deleting words is deleting tokens. The fixture's
            # figures were computed by another build of the programs (another machine, another
            # optimisation level), so the same arithmetic may round differently in the last bit.
            for k in figures:
                if old[k].dtype.kind in "fc":
                    np.testing.assert_allclose(new[k], old[k], rtol=1e-6, atol=1e-7,
                                               err_msg=f"{name}: {k}")
                else:  # the rows' input digests, the instances' ids
                    np.testing.assert_array_equal(new[k], old[k], err_msg=f"{name}: {k}")
    assert (run / "analysis" / "index.html").exists()
