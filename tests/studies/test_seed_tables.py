"""Table 2 over seeds: mean +- sd, the 2-sd mark, on hand-made summaries and a tiny study."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxattn.config import ConfigError, load_config
from jaxattn.studies.jain_wallace import seed_tables
from jaxattn.studies.jain_wallace.seed_runs import extra_seeds

ROOT = Path(__file__).resolve().parents[2]


def summary(dataset: str, encoder: str, taus: dict[str, tuple[float, float]]) -> dict:
    """A summary.json with the Kendall stats Table 2 reads: pair -> (negative, positive) means."""
    kendall = {}
    for pair, (neg, pos) in taus.items():
        kendall[pair] = {
            "overall": {"mean": (neg + pos) / 2, "std": 0.2, "n": 20, "frac_significant": 0.5},
            "by_predicted": {
                "0": {"name": "negative", "mean": neg, "std": 0.2, "n": 10, "frac_significant": 0.5},
                "1": {"name": "positive", "mean": pos, "std": 0.2, "n": 10, "frac_significant": 0.5},
            },
        }
    return {"setting": {"dataset": dataset, "encoder": encoder}, "kendall": kendall}


def test_mean_sd_matches_numpy_and_skips_missing():
    mean, sd, n = seed_tables.mean_sd([0.1, None, 0.3, float("nan"), 0.2])
    assert n == 3 and mean == pytest.approx(0.2) and sd == pytest.approx(np.std([.1, .3, .2], ddof=1))
    assert seed_tables.mean_sd([0.4]) == (0.4, None, 1)
    assert seed_tables.mean_sd([None]) == (None, None, 0)


def test_within_spread_is_two_sd_either_side():
    assert seed_tables.within_spread(0.40, 0.05, 0.50)  # exactly 2 sd
    assert seed_tables.within_spread(0.40, 0.05, 0.30)
    assert not seed_tables.within_spread(0.40, 0.05, 0.51)
    assert seed_tables.within_spread(0.40, None, 0.40) is None  # one seed: no spread, no mark
    assert seed_tables.within_spread(0.40, 0.05, None) is None  # no published cell


def test_seed_rows_on_hand_made_sst2_summaries():
    # SST BiLSTM published: grad .40 / .38, LOO .34 / .33 (negative / positive).
    seeds = [
        summary("sst2", "bilstm", {"attn_grad": (0.40, 0.50), "attn_loo": (0.30, 0.20),
                                   "grad_loo": (0.5, 0.5)}),
        summary("sst2", "bilstm", {"attn_grad": (0.44, 0.52), "attn_loo": (0.34, 0.22),
                                   "grad_loo": (0.6, 0.6)}),
        summary("sst2", "bilstm", {"attn_grad": (0.42, 0.54), "attn_loo": (0.32, 0.24),
                                   "grad_loo": (0.7, 0.7)}),
    ]
    rows = seed_tables.seed_table2_rows(seeds)
    assert [r["class"] for r in rows] == ["negative", "positive", "all"]
    neg, pos = rows[0], rows[1]
    assert neg["seeds"] == 3 and neg["attn_grad_seed_means"] == [0.40, 0.44, 0.42]
    assert neg["attn_grad_mean"] == pytest.approx(0.42) and neg["attn_grad_sd"] == pytest.approx(0.02)
    assert neg["attn_grad_published_mean"] == 0.40 and neg["attn_grad_within"] is True  # |.40-.42| <= .04
    assert pos["attn_grad_published_mean"] == 0.38 and pos["attn_grad_within"] is False  # .52 +- .04
    assert neg["attn_loo_within"] is True and pos["attn_loo_within"] is False  # .22 +- .04 vs .33
    assert neg["grad_loo_within"] is None  # no published baseline
    assert seed_tables.seed_cell(neg, "attn_grad") == "0.42 ± 0.02 / 0.40 ✓"
    assert seed_tables.seed_cell(pos, "attn_grad") == "0.52 ± 0.02 / 0.38 ✗"
    assert seed_tables.seed_cell(neg, "grad_loo") == "0.60 ± 0.10"
    note = seed_tables.seed_spread_note(rows)
    assert note.startswith("2 of 4 published means lie within")
    assert "SST / bilstm / positive attn~grad: 0.52 ± 0.02 vs J&W 0.38" in note
    display = seed_tables.seed_table2_display(rows, ["bilstm", "cnn"], {"bilstm": "LSTM"})
    assert display[0]["attn~grad LSTM"] == "0.42 ± 0.02 / 0.40 ✓"
    assert display[0]["attn~grad cnn"] == "–"  # no CNN rows given


def test_seed_rows_match_classes_by_name_when_a_seed_never_predicts_one():
    one = summary("sst2", "cnn", {"attn_grad": (0.40, 0.50)})
    other = summary("sst2", "cnn", {"attn_grad": (0.44, 0.52)})
    del other["kendall"]["attn_grad"]["by_predicted"]["0"]  # never predicted negative
    rows = seed_tables.seed_table2_rows([one, other])
    neg = rows[[r["class"] for r in rows].index("negative")]
    assert neg["attn_grad_seed_means"] == [0.40, None] and neg["seeds"] == 1
    assert neg["attn_grad_sd"] is None and neg["attn_grad_within"] is None


def test_seed_rows_refuse_mixed_models():
    a = summary("sst2", "bilstm", {"attn_grad": (0.4, 0.4)})
    b = summary("sst2", "cnn", {"attn_grad": (0.4, 0.4)})
    with pytest.raises(ValueError, match="different models"):
        seed_tables.seed_table2_rows([a, b])


def test_extra_seeds_follow_the_base_seed():
    cfg = load_config(None, ["train.seed=3"])
    assert extra_seeds(cfg, 3) == [4, 5]
    assert extra_seeds(cfg, 1) == []
    with pytest.raises(ConfigError):
        extra_seeds(cfg, 0)


def _experiment():
    spec = importlib.util.spec_from_file_location("jw_experiment", ROOT / "experiments" / "jain_wallace.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_jain_wallace_experiment_with_seeds_on_generated_data(tmp_path):
    out = tmp_path / "jw"
    args = ["--out", str(out), "--datasets", "synthetic", "--encoders", "average", "--seeds", "2",
            "--seed-mode", "vmap", "--only", "grad,loo", "--limit", "16", "--quiet"]
    for override in ("data.limit_train=200", "train.epochs=1", "model.embed_dim=8",
                     "model.hidden_size=8", "train.buckets=[40]"):
        args += ["--set", override]
    assert _experiment().main(args) == 0
    base = out / "synthetic_average"
    seed_run = base / "seeds" / "seed_1"
    metrics = json.loads((seed_run / "metrics.json").read_text())
    assert "vmapped" in metrics["trained_as"]
    per_seed = [json.loads((d / "analysis" / "summary.json").read_text()) for d in (base, seed_run)]
    combined = json.loads((out / "summary.json").read_text())["runs"][0]
    rows = combined["seed_table2"]
    assert [r["class"] for r in rows][-1] == "all"
    all_row = rows[-1]  # every seed has the pooled row; each seed's own mean, in seed order
    got = [s["kendall"]["attn_grad"]["overall"]["mean"] for s in per_seed]
    assert all_row["attn_grad_seed_means"] == pytest.approx(got) and all_row["seeds"] == 2
    assert all_row["attn_grad_mean"] == pytest.approx(np.mean(got))
    assert all_row["attn_grad_sd"] == pytest.approx(np.std(got, ddof=1))
    assert got[0] != got[1]  # the seeds are different models
    page = (out / "index.html").read_text()
    assert 'id="table2-seeds"' in page
    assert page.index("<table") == page.index('<table class="verdict">')  # the verdict first
    assert "attn~grad Avg" in (out / "table2_seeds.md").read_text()
