"""The J&W pipeline end to end on a tiny synthetic run: files, numbers, resumption."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from jaxattn.cli import main as cli_main
from jaxattn.config import ConfigError, load_config
from jaxattn.data.batching import make_batch
from jaxattn.explain import importance
from jaxattn.runs.run import load_run, train_run
from jaxattn.studies.jain_wallace import stages, tables
from jaxattn.studies.jain_wallace.analyze import analyze_run
from jaxattn.studies.jain_wallace.summary import VALUE_MEASURES
from jaxattn.studies.stage_cache import load_stage
from tests.helpers import fresh_process_xla_flags

FAST = dict(
    num_permutations=8,
    num_adversaries=2,
    adv_steps=10,
    ig_steps=4,
    ig_chunk=2,
    samples=5,
    buckets=(64,),
)  # one compilation per stage
LIMIT = 24
# The stages a plain analysis runs (the Average encoder has no self-attention: self_attn, and
# no self-attention seam: summaries; a word vocabulary has no word of several pieces: loo_words).
RUN = tuple(s for s in stages.list_stages()
            if s not in ("self_attn", "summaries", "loo_words")
            and stages.STAGE_SPECS[s].by_default)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = load_config(
        None,
        [
            "data.name=synthetic",
            "data.limit_train=300",
            "model.encoder=average",
            "model.embed_dim=16",
            "model.hidden_size=8",
            "train.epochs=1",
            "train.buckets=[64]",
            "train.eval_batch_size=512",
        ],
    )
    train_run(cfg, out, progress=False)
    analyze_run(out, limit=LIMIT, progress=False, **FAST)
    return out


def test_writes_every_stage_and_the_report(run_dir):
    out = run_dir / "analysis"
    for name in ("attention", *RUN):
        assert (out / f"{name}.npz").exists()
    assert not (out / "self_attn.npz").exists()  # skipped for a model without it, not an error
    for name in (
        "summary.json",
        "tables.md",
        "tables.csv",
        "index.html",
        "perm_violin.png",
        "adv_violin.png",
        "adv_hist.png",
        "tau_attn_grad.png",
    ):
        assert (out / name).stat().st_size > 0
    pairs, meta = load_stage(out / "agreement.npz")
    assert "attn_grad" in meta["pairs"] and pairs["attn_grad.kendall"].shape == (LIMIT,)
    page = (out / "index.html").read_text()
    assert page.count('class="heat"') == FAST["samples"]
    assert 'src="perm_violin.png"' in page and "Table 2" in page


def test_summary_has_the_required_keys(run_dir):
    summary = json.loads((run_dir / "analysis" / "summary.json").read_text())
    for pair in ("attn_grad", "attn_loo", "grad_loo", "attn_ig", "attn_grad_through"):
        stats = summary["kendall"][pair]
        assert stats["overall"]["n"] == LIMIT
        assert set(stats["by_predicted"]) <= {"0", "1"} and stats["by_gold"]
        for group in (stats["overall"], *stats["by_predicted"].values()):
            assert {"mean", "std", "frac_significant", "n"} <= set(group)
            assert -1 <= group["mean"] <= 1 and 0 <= group["frac_significant"] <= 1
    assert 0 <= summary["permutation"]["median_tvd"]["overall"]["mean"] <= 1
    assert 0 <= summary["adversarial"]["max_jsd_mean"] <= np.log(2)
    assert 0 <= summary["adversarial"]["frac_found"] <= 1
    for measure in VALUE_MEASURES:
        assert summary["agreement"][measure]["attn_grad"]["overall"]["n"] > 0
    assert set(summary["rationale"]["auprc"]) >= {"attn", "grad", "loo", "ig", "uniform"}
    assert summary["setting"]["dataset"] == "synthetic" and summary["setting"]["selection"] == "dev"


def test_the_page_opens_with_the_verdict_linked_to_its_evidence(run_dir):
    from jaxattn.report.verdict import VERDICT_ROWS, verdict_rows
    from jaxattn.studies.jain_wallace.report import evidence

    out = run_dir / "analysis"
    page = (out / "index.html").read_text()
    assert page.index("<table") == page.index('<table class="verdict">')  # the first table
    for anchor in ("table2", "stage-perm", "stage-adv", "stage-erasure", "stage-eraser",
                   "stage-plausibility"):
        assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page
    summary = json.loads((out / "summary.json").read_text())
    rows = verdict_rows(evidence(out, summary))
    # plus the rows of each stage that declares some and ran (none of a plain analysis here)
    declared = [n for n, s in stages.STAGE_SPECS.items() if s.verdict and n in summary["timings"]]
    assert len(rows) == len(VERDICT_ROWS) + len(declared)
    assert [r.status for r in rows[:3]] != ["not run"] * 3  # grad, loo, perm and adv ran
    assert "jaxattn wp --run" in rows[3].reading  # no W&P suite yet: says how to run it
    assert "## Verdict" in (out / "tables.md").read_text()


def test_stage_rows_follow_the_split_order(run_dir):
    run = load_run(run_dir)
    split = run.prepare_data().splits["test"]
    arrays, meta = load_stage(run_dir / "analysis" / "grad.npz")
    base, _ = load_stage(run_dir / "analysis" / "attention.npz")
    np.testing.assert_array_equal(arrays["index"], np.arange(LIMIT))
    assert meta["split"] == "test" and meta["seconds"] > 0
    for row in (0, 7, 23):
        real = len(split.tokens[row]) - 2
        batch = make_batch(split, [row], buckets=(64,))  # one compilation for every row
        expected = importance.gradient_importances(run.model, run.params, batch)
        for key, value in zip(("grad", "grad_through"), expected):
            stored = arrays[key][row]
            np.testing.assert_allclose(stored[: real + 2], value[0, : real + 2], atol=1e-6)
            assert np.all(stored[real + 1 :] == 0) and stored[0] == 0
        np.testing.assert_allclose(base["attn"][row, 1 : real + 1].sum(), 1.0, rtol=1e-5)
        assert base["attn"][row, 0] == 0 and np.all(base["attn"][row, real + 1 :] == 0)


def test_finished_stages_are_not_recomputed(run_dir, monkeypatch):
    out = run_dir / "analysis"
    before = {name: (out / f"{name}.npz").stat().st_mtime_ns for name in ("attention", *RUN)}

    def fail(*args):
        raise AssertionError("a finished stage was recomputed")

    for name in ("attention", *stages.list_stages()):
        monkeypatch.setitem(
            stages.STAGE_SPECS, name, dataclasses.replace(stages.STAGE_SPECS[name], compute=fail)
        )
    analyze_run(run_dir, limit=LIMIT, progress=False, **FAST)
    after = {name: (out / f"{name}.npz").stat().st_mtime_ns for name in before}
    assert after == before
    # Other instances or options make a stage stale.
    with pytest.raises(AssertionError, match="recomputed"):
        analyze_run(
            run_dir, only={"perm"}, limit=LIMIT, progress=False, **{**FAST, "num_permutations": 6}
        )


def test_a_removed_stage_is_recomputed_alone(run_dir):
    out = run_dir / "analysis"
    (out / "loo.npz").unlink()
    before = (out / "grad.npz").stat().st_mtime_ns
    analyze_run(run_dir, only={"loo"}, limit=LIMIT, progress=False, **FAST)
    assert (out / "loo.npz").exists() and (out / "grad.npz").stat().st_mtime_ns == before
    summary = json.loads((out / "summary.json").read_text())
    assert "attn_loo" in summary["kendall"] and "adversarial" in summary


def test_cli_analyze_and_bad_arguments(run_dir, capsys):
    assert (
        cli_main(["analyze", "--run", str(run_dir), "--only", "perm", "--limit", "16", "--quiet"])
        == 0
    )
    assert "index.html" in capsys.readouterr().out
    # A narrower request writes beside the fuller analysis and leaves it as it was.
    full = json.loads((run_dir / "analysis" / "summary.json").read_text())
    assert full["n"] == LIMIT and "adversarial" in full
    (view,) = (run_dir / "analysis" / "views").iterdir()
    summary = json.loads((view / "summary.json").read_text())
    assert summary["n"] == 16 and summary["permutation"]["num_permutations"] == 100
    assert "adversarial" not in summary  # cached with other options: not mixed in
    assert cli_main(["analyze", "--run", str(run_dir), "--only", "perm,nope"]) == 2
    with pytest.raises(ConfigError, match="unknown option"):
        analyze_run(run_dir, progress=False, num_permutation=3)


def test_table2_rows_put_the_published_numbers_beside_ours():
    stats = {"mean": 0.3, "std": 0.1, "frac_significant": 0.5, "n": 10}
    named = {"0": {"name": "negative", **stats}, "1": {"name": "positive", **stats}}
    pair = {"overall": stats, "by_predicted": named}
    summary = {
        "setting": {
            "dataset": "sst2",
            "encoder": "cnn",
            "embeddings": "random",
            "selection": "dev",
            "attention": "additive",
        },
        "kendall": {"attn_grad": pair, "attn_loo": pair, "grad_loo": pair},
    }
    rows = tables.table2_rows(summary)
    assert [r["class"] for r in rows] == ["negative", "positive", "all"]
    assert rows[1]["attn_grad_published_mean"] == 0.50 and rows[1]["attn_loo_published_std"] == 0.17
    assert rows[2]["attn_grad_published_mean"] is None and rows[0]["grad_loo_mean"] == 0.3
    differs = {r["setting"] for r in tables.setting_rows(summary["setting"]) if r["differs"]}
    assert differs == {"embeddings", "selection"}
    # SNLI: jaxattn's class 0 is entailment, the published class 0 contradiction.
    snli = {"0": {"name": "entailment", **stats}, "2": {"name": "contradiction", **stats}}
    summary["setting"]["dataset"] = "snli"
    summary["kendall"] = {"attn_grad": {"overall": stats, "by_predicted": snli}}
    rows = tables.table2_rows(summary)
    assert [r["class"] for r in rows] == ["entailment", "contradiction", "all"]
    assert rows[0]["attn_grad_published_mean"] == 0.29  # J&W class 1 (entailment), CNN
    assert rows[1]["attn_grad_published_mean"] == 0.27


def test_published_gaps_name_every_mean_beyond_the_tolerance():
    rows = [
        {"dataset": "SST", "encoder": "cnn", "class": "negative", "attn_grad_mean": 0.34,
         "attn_grad_published_mean": 0.45, "attn_loo_mean": 0.30, "attn_loo_published_mean": 0.36},
        {"dataset": "SST", "encoder": "cnn", "class": "all", "attn_grad_mean": 0.35,
         "attn_grad_published_mean": None, "attn_loo_mean": 0.3, "attn_loo_published_mean": None},
    ]
    assert tables.published_gaps(rows) == ["SST / cnn / negative: attn~grad 0.34 vs J&W 0.45 (-0.11)"]
    note = tables.published_gap_note(rows)
    assert note.startswith("1 of 2 mean taus lie more than 0.10") and "attn~grad 0.34" in note
    assert tables.published_gap_note(rows, tolerance=0.2).startswith("Every mean tau lies within 0.20")
    assert tables.published_gap_note(rows[1:]) == "No published figure to compare with."


def test_cli_splits_a_cpu_into_devices_with_the_same_results(run_dir, tmp_path):
    """`jaxattn analyze` as a program runs data-parallel over one CPU device per core."""
    import os
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("analysis"))
    env = {**os.environ, "XLA_FLAGS": fresh_process_xla_flags()}
    cmd = [sys.executable, "-m", "jaxattn.cli", "analyze", "--run", str(copy), "--only", "grad,loo",
           "--limit", str(LIMIT), "--cpu-devices", "2", "--quiet"]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    for stage in ("grad", "loo"):
        split_arrays, meta = load_stage(copy / "analysis" / f"{stage}.npz")
        one_device, one_meta = load_stage(run_dir / "analysis" / f"{stage}.npz")
        assert meta["devices"] == 2 and one_meta["devices"] == 1
        for key, value in one_device.items():
            if value.dtype.kind == "U":  # the rows' input digests
                np.testing.assert_array_equal(split_arrays[key], value)
                continue
            np.testing.assert_allclose(split_arrays[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
