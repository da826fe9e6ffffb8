"""What the commands print: per-epoch lines with every number named, and the closing lines
(verdict, test scores, report path) exactly once."""

import re
from pathlib import Path

import numpy as np

from jaxattn.cli import main
from jaxattn.cli.answer import answer_lines, scores_line
from jaxattn.studies.stage_cache import load_stage
from jaxattn.training.trainer import epoch_line

CONFIG = Path(__file__).parents[2] / "configs" / "synthetic_bilstm_additive.toml"
TINY = ["data.limit_train=120", "train.epochs=2", "model.encoder=average", "model.embed_dim=8",
        "model.hidden_size=8", "train.buckets=[40]"]
CLOSING = ("verdict: ", "test: ", "report: ")


def test_epoch_lines_name_every_number():
    one = epoch_line("", 2, 10, np.array([0.91312]), np.array([0.24104]), 1.25, "dev AUC")
    assert one == "epoch 2/10: dev AUC 0.9131, train loss 0.2410 (1.2s)"
    two = epoch_line("adversary x2", 1, 4, np.array([-0.1399, -83.1845]), np.array([0.5, 2.0]),
                     3.0, "dev objective", ["lambda 0.001", "lambda 1"])
    assert two == ("adversary x2 epoch 1/4: lambda 0.001: dev objective -0.1399, train loss "
                   "0.5000; lambda 1: dev objective -83.1845, train loss 2.0000 (3.0s)")
    # Members without names are numbered, never shown as a bare list of numbers.
    assert "member 2: s 2.0000" in epoch_line("", 1, 1, np.array([1.0, 2.0]), np.ones(2), 0, "s")


def test_test_line_labels_the_scores():
    metrics = {"test": {"accuracy": 0.5, "f1": 0.25, "auc": None}, "best_epoch": 3,
               "selection": "dev"}
    assert scores_line(metrics) == "test: accuracy 0.5000, F1 0.2500 (epoch 3, selected on dev)"


def _count(lines, prefix):
    return sum(line.startswith(prefix) for line in lines)


def test_train_then_analyze_prints_labelled_epochs_and_one_answer(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--config", str(CONFIG), "--out", str(run)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if re.match(r"epoch \d/2: ", line)]
    assert len(epochs) == 2, out
    assert all(re.fullmatch(r"epoch \d/2: dev AUC \d\.\d{4}, train loss \d+\.\d{4} \(\d+\.\ds\)",
                            line) for line in epochs), epochs

    assert main(["analyze", "--run", str(run), "--only", "grad", "--limit", "8"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines() + captured.err.splitlines()
    for prefix in CLOSING:
        assert _count(lines, prefix) == 1, (prefix, lines)
    # The closing lines end the output, in this order.
    assert [line.split(":")[0] for line in captured.out.splitlines()[-3:]] == [
        "verdict", "test", "report"]
    verdict, test, report = captured.out.splitlines()[-3:]
    assert verdict.startswith("verdict: The tests ") or verdict.startswith("verdict: No test")
    assert re.fullmatch(r"test: accuracy \d\.\d{4}, F1 \d\.\d{4}, AUC \d\.\d{4} "
                        r"\(epoch \d, selected on dev\)", test), test
    assert report == f"report: {(run / 'analysis' / 'index.html').resolve()}"
    assert answer_lines(run, run / "analysis" / "index.html")[0] == verdict

    # --option sets an analysis option (part of the stage's key); a bad one is one line and
    # leaves the analysis as it was
    assert main(["analyze", "--run", str(run), "--only", "ig", "--limit", "4", "--quiet",
                 "--option", "ig_steps=3"]) == 0
    views = sorted((run / "analysis").rglob("ig.npz"))
    assert views and all(load_stage(p)[1]["options"]["ig_steps"] == 3 for p in views)
    capsys.readouterr()
    before = sorted(p for p in (run / "analysis").rglob("*"))
    assert main(["analyze", "--run", str(run), "--only", "ig", "--option", "ig_stepz=3"]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert line.startswith("jaxattn analyze: error: ") and "ig_stepz" in line
    assert sorted(p for p in (run / "analysis").rglob("*")) == before
