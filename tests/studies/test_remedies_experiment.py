"""experiments/remedies.py end to end on the synthetic task: rows, report, resume."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGE_FILES = {"attention", "grad", "loo", "ig", "perm", "adv", "norm", "erasure", "eraser",
               "plausibility"}


def _script():
    spec = importlib.util.spec_from_file_location("remedies_experiment",
                                                  ROOT / "experiments" / "remedies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARGS = ["--datasets", "synthetic", "--variants", "vanilla", "orthogonal", "deceptive",
        "--deception-data", "synthetic", "--lambdas", "0", "1", "--limit", "6", "--quiet",
        "--set", "train.epochs=1", "--set", "data.limit_train=256",
        "--set", "model.hidden_size=8", "--set", "model.embed_dim=8",
        "--option", "adv_steps=3", "--option", "num_permutations=4",
        "--option", "ig_steps=4", "--option", "num_adversaries=2",
        # one padded length for training and analysis: each length is a program to compile,
        # and compiling is most of this test's time
        "--set", "train.buckets=[64]", "--option", "max_buckets=1"]


@pytest.mark.slow
def test_remedies_end_to_end(tmp_path):
    remedies = _script()
    out = tmp_path / "rem"
    assert remedies.main(["--out", str(out), *ARGS]) == 0
    summary = json.loads((out / "summary.json").read_text())
    comparison, deception = summary["comparison"], summary["deception"]
    assert [r["variant"] for r in comparison] == ["vanilla", "orthogonal", "deceptive"]
    assert [r["lambda"] for r in deception] == [0.0, 1.0]
    assert not summary["skipped"]
    for row in comparison:
        # every J&W and battery column is filled from the run's own files
        for column in ("tau attn_grad", "perm median TVD", "adv max JSD",
                       *remedies.BATTERY_COLUMNS):
            assert isinstance(row[column], float), (row["variant"], column)
        assert 0 <= row["conicity"] <= 1 and row["analysed"] == 6
    # the deceptive comparison row is the lambda-1 deception run, trained once
    deceptive = comparison[2]
    lam1 = next(r for r in deception if r["lambda"] == 1.0)
    run = out / "synthetic_bilstm_deception1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert deceptive["accuracy"] == metrics["test"]["accuracy"]
    assert lam1["conicity"] == metrics["test_conicity"]
    for row in deception:
        assert 0 <= row["attention mass on I"] <= 1 and 0 < row["share of I"] < 1
    report = (out / "remedies.md").read_text()
    assert report.startswith("# Making and breaking attention\n\n**Verdict.**")
    assert "On synthetic, the Orthogonal LSTM" in report and "On synthetic, lambda 1" in report
    assert (out / "remedies.png").stat().st_size > 0 and (out / "deception.png").exists()

    # a second call reuses every run and stage (only the derived tables are rewritten)
    kept = [*out.glob("*/params.msgpack"),
            *(p for p in out.glob("*/analysis/*.npz") if p.stem in STAGE_FILES)]
    before = {p: p.stat().st_mtime_ns for p in kept}
    assert len(kept) == 4 + 3 * len(STAGE_FILES) + 4
    assert remedies.main(["--out", str(out), *ARGS]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["comparison"] == comparison and again["deception"] == deception
    assert {p: p.stat().st_mtime_ns for p in kept} == before

    # --collect trains nothing: the same rows whatever --set says; a run not made is skipped
    assert remedies.main(["--out", str(out), *ARGS, "--collect", "--set", "train.epochs=9",
                          "--variants", "vanilla", "orthogonal", "deceptive", "diversity"]) == 0
    collected = json.loads((out / "summary.json").read_text())
    assert collected["comparison"] == comparison and collected["deception"] == deception
    assert list(collected["skipped"]) == ["synthetic_diversity"]
    assert not (out / "synthetic_diversity_lstm").exists()
    assert {p: p.stat().st_mtime_ns for p in kept} == before


def test_remedies_skips_what_cannot_run(tmp_path, capsys):
    remedies = _script()
    code = remedies.main(["--out", str(tmp_path), "--datasets", "nosuchdata",
                          "--variants", "vanilla", "--skip-deception", "--quiet"])
    assert code == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["skipped"]) == ["nosuchdata_vanilla"]
    assert "nosuchdata_vanilla: skipped" in capsys.readouterr().err
