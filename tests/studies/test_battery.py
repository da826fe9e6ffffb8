"""The post-2019 stages in the J&W battery on a tiny synthetic run, and attributions in and out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxattn.cli import main as cli_main
from jaxattn.config import ConfigError, load_config
from jaxattn.runs.run import train_run
from jaxattn.studies.jain_wallace import attributions
from jaxattn.studies.jain_wallace.analyze import analysis_options, analyze_run, chosen_stages

# score re-runs the model in its own batch shapes, so each probability in [0, 1] behind these means
# is float32 arithmetic again, in another order: a few units of float32 rounding (eps ~ 1.2e-7)
# per value, absolute for means near 0 (7.6e-9 seen on 0.0039), relative for the others.
FLOAT32_ROUND_TRIP = 16 * float(np.finfo(np.float32).eps)
FAST = dict(ig_steps=4, ig_chunk=2, samples=2, buckets=(64,))
LIMIT = 16


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = load_config(None, ["data.name=synthetic", "data.limit_train=300", "model.encoder=average",
                             "model.embed_dim=16", "model.hidden_size=8", "train.epochs=1",
                             "train.buckets=[64]", "train.eval_batch_size=512"])
    train_run(cfg, out, progress=False)
    analyze_run(out, only={"eraser", "plausibility"}, limit=LIMIT, progress=False, **FAST)
    return out


def test_a_stage_brings_the_stages_it_reads():
    assert chosen_stages({"erasure"}) == ["loo", "ig", "summaries", "erasure"]
    assert chosen_stages({"eraser"}) == ["grad", "loo", "loo_words", "ig", "summaries", "norm",
                                         "eraser"]


def test_a_stage_reading_others_is_keyed_on_their_keys():
    from jaxattn.studies.jain_wallace.stages import STAGE_SPECS, AnalysisOptions
    from jaxattn.studies.stage_cache import stage_key

    spec, opts = STAGE_SPECS["erasure"], AnalysisOptions()
    keys = {stage_key(spec, opts, "p", "test", inputs) for inputs in
            (None, {"loo": "a", "ig": "b"}, {"loo": "a", "ig": "c"})}
    assert len(keys) == 3


def test_battery_tables_and_headline_figures(run_dir):
    out = run_dir / "analysis"
    for name in ("grad", "loo", "ig", "norm", "eraser", "plausibility"):
        assert (out / f"{name}.npz").exists()
    assert not (out / "perm.npz").exists() and not (out / "erasure.npz").exists()
    summary = json.loads((out / "summary.json").read_text())
    eraser = summary["eraser"]["headline"]
    assert set(eraser["aopc_comprehensiveness"]) == {"attn", "grad", "grad_through", "loo", "ig",
                                                     "norm", "random"}
    assert 1 <= eraser["attention_rank_comprehensiveness"] <= eraser["n_methods"] == 7
    plaus = summary["plausibility"]["headline"]
    assert set(plaus["auprc"]) == set(eraser["aopc_comprehensiveness"])
    assert summary["eraser"]["unit"] == "piece"  # a word vocabulary: every word one token
    assert not (out / "loo_words.npz").exists()  # skipped: it would be loo
    tables = (out / "tables.md").read_text()
    assert "top k% of the tokens deleted" in tables
    for title in ("ERASER comprehensiveness", "ERASER sufficiency", "Plausibility against"):
        assert title in tables
    assert "random ranking (floor)" in tables and "norm-based (Kobayashi)" in tables
    assert "chance (share of rationale tokens)" in tables
    assert 0 < plaus["chance"] < 1 and "chance" not in plaus["auprc"]  # not a ranked method


def test_attributions_round_trip(run_dir, tmp_path, capsys):
    exported = tmp_path / "attr.jsonl"
    assert attributions.export_attributions(run_dir / "analysis", exported) == LIMIT
    assert cli_main(["score", "--run", str(run_dir), "--attributions", str(exported),
                     "--quiet"]) == 0
    scored = json.loads((run_dir / "score" / "attr" / "summary.json").read_text())
    ours = json.loads((run_dir / "analysis" / "summary.json").read_text())
    for test, measure in (("eraser", "aopc_comprehensiveness"), ("eraser", "aopc_sufficiency"),
                          ("plausibility", "auprc")):
        for method in ("attn", "grad", "loo", "norm", "random"):
            key = method if method == "random" else attributions.PREFIX + method
            np.testing.assert_allclose(scored[test]["methods"][key][measure]["mean"],
                                       ours[test]["methods"][method][measure]["mean"],
                                       rtol=FLOAT32_ROUND_TRIP, atol=FLOAT32_ROUND_TRIP)
    # score recomputes LOO in its own batch shapes: float32 rounding there can swap two
    # near-tied LOO values, which moves a Kendall tau by ~1e-5, not more.
    np.testing.assert_allclose(
        scored["eraser"]["methods"]["file:attn"]["taucorr_loo"]["mean"],
        ours["eraser"]["methods"]["attn"]["taucorr_loo"]["mean"], atol=1e-3)
    table = (run_dir / "score" / "attr" / "tables.md").read_text()
    assert "| attn |" in table and "| loo |" in table  # the file's method names


@pytest.mark.parametrize("line,why", [
    ("{not json", "not JSON"),
    ('{"id": 0, "tokens": ["a"]}', '"id", "tokens" and "scores"'),
    ('{"id": 1, "tokens": ["a", "b"], "scores": {"m": [1.0]}}', "expected 2 numbers"),
    ('{"id": 1, "tokens": ["a"], "scores": {"other": [1.0]}}', "differ from the first line"),
    ('{"id": 0, "tokens": ["a"], "scores": {"m": [1.0]}}', "already on line 1"),
    ('{"id": 1, "tokens": ["a"], "scores": {"m": [NaN]}}', "finite"),
    ('{"id": 1, "split": ["test"], "tokens": ["a"], "scores": {"m": [1]}}', '"split" must be'),
    ('{"id": 1, "tokens": ["a"], "scores": {"m": [' + "9" * 401 + "]}}", "a 401-digit number"),
    ('{"id": 1, "tokens": ["a"], "scores": {"m": [1e39]}}', "within float32's range"),
])
def test_bad_attribution_lines_are_one_line_errors(run_dir, tmp_path, capsys, line, why):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 0, "tokens": ["a"], "scores": {"m": [0.5]}}\n' + line + "\n")
    assert cli_main(["score", "--run", str(run_dir), "--attributions", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{bad}:2:" in err and why in err and "\n" not in err


def test_tokens_that_differ_from_the_run_are_refused(run_dir, tmp_path, capsys):
    bad = tmp_path / "other.jsonl"
    bad.write_text('{"id": 0, "tokens": ["surely", "not", "this"], "scores": {"m": [1, 2, 3]}}\n')
    assert cli_main(["score", "--run", str(run_dir), "--attributions", str(bad)]) == 2
    assert f"{bad}:1: tokens differ from row 0" in capsys.readouterr().err


def test_erasure_summary_names_both_conventions():
    from types import SimpleNamespace

    from jaxattn.studies.jain_wallace import battery_report

    mask = np.zeros((3, 7), bool)
    mask[0, 1:2], mask[1, 1:5], mask[2, 1:6] = True, True, True  # lengths 1, 4, 5
    res = {"jsd_top": np.asarray([0.0, 0.3, 0.1]), "jsd_random": np.asarray([np.nan, 0.1, 0.1]),
           "flip_top": np.asarray([False, True, False]),
           "flip_random": np.asarray([False, False, False]),
           "attention.flipped": np.asarray([False, True, False]),
           "attention.count": np.asarray([0, 2, 0]),
           "attention.mass": np.asarray([0.0, 0.7, 0.0])}
    for i in range(5):  # random orders: instance 2 flips after 1 removal in the first only
        res[f"random{i}.flipped"] = np.asarray([False, False, i == 0])
        res[f"random{i}.count"] = np.asarray([0, 0, 1 if i == 0 else 0])
        res[f"random{i}.mass"] = np.zeros(3)
    summary = battery_report.summarize_erasure(SimpleNamespace(mask=mask, stages={"erasure": res}))
    er = summary["erasure"]
    assert er["single"]["n"] == 2 and er["single"]["flip_top"] == 0.5
    np.testing.assert_allclose(er["single"]["jsd_diff"]["mean"], 0.1)  # (0.2 + 0.0) / 2
    ss, moh = er["many"]["attention"]["serrano_smith"], er["many"]["attention"]["mohankumar"]
    assert ss["fraction"]["n"] == 1 and ss["fraction"]["mean"] == 0.5  # 2 of 4 tokens
    assert ss["mass"]["mean"] == 0.7 and ss["share_flipped"] == 0.5
    # never-flipping = 1.0, the length counts SOS and EOS: (1 + 2/6 + 1) / 3
    np.testing.assert_allclose(moh["fraction"]["mean"], (2 + 2 / 6) / 3)
    rand = er["many"]["random"]["serrano_smith"]
    assert rand["fraction"]["n"] == 1 and rand["fraction"]["mean"] == 1 / 5
    assert er["headline"]["fraction_random"] == 1 / 5 and er["headline"]["flip_random"] == 0.0
    assert er["erasure_limit"] == "n-1"  # a file without the option: version 1 stopped at n - 1
    for limit in ("all", "n-1"):
        meta = {"erasure": {"options": {"seed": 0, "erasure_limit": limit}}}
        summary = battery_report.summarize_erasure(
            SimpleNamespace(mask=mask, stages={"erasure": res}, meta=meta))
        assert summary["erasure"]["erasure_limit"] == limit
        titles = [title for title, _ in battery_report.erasure_tables(summary)]
        assert f'erasure_limit = "{limit}"' in titles[1]


def test_an_unknown_erasure_limit_is_refused():
    assert analysis_options({}).erasure_limit == "all"
    assert analysis_options({"erasure_limit": "n-1"}).erasure_limit == "n-1"
    with pytest.raises(ConfigError, match="erasure_limit='n' is not one of 'all', 'n-1'"):
        analysis_options({"erasure_limit": "n"})


def test_score_refuses_folders_holding_other_results(run_dir, tmp_path, capsys):
    exported = tmp_path / "attr.jsonl"
    attributions.export_attributions(run_dir / "analysis", exported)
    analysis = run_dir / "analysis"
    before = {p: p.read_bytes() for p in analysis.rglob("*") if p.is_file()}
    other = tmp_path / "other"
    other.mkdir()
    (other / "summary.json").write_text('{"mine": 1}\n')
    for out, needle in ((analysis, "inside the run's analysis folder"),
                        (analysis / "views" / "x", "inside the run's analysis folder"),
                        (other, "did not write (a summary.json that is not a score's)")):
        assert cli_main(["score", "--run", str(run_dir), "--attributions", str(exported),
                         "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out {out}: " in err and needle in err, err
    assert {p: p.read_bytes() for p in analysis.rglob("*") if p.is_file()} == before
    assert (other / "summary.json").read_text() == '{"mine": 1}\n'
    # A score's own folder is rewritten by the next score.
    mine = tmp_path / "mine"
    for _ in range(2):
        assert cli_main(["score", "--run", str(run_dir), "--attributions", str(exported),
                         "--out", str(mine), "--quiet"]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["summary.json", "tables.md"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**500), 10**500) | st.text(max_size=4)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=6,
)
_records = st.fixed_dictionaries(
    {"id": st.integers(-2, 3) | _json_values, "tokens": st.just(["a", "b"]) | _json_values,
     "scores": st.dictionaries(st.sampled_from(["m", "n"]), st.lists(
         st.integers(-(10**400), 10**400) | st.floats() | _json_values, max_size=3), max_size=2)
     | _json_values},
    optional={"split": st.sampled_from(["test", "dev", "nope"]) | _json_values},
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_records.map(json.dumps) | st.text(max_size=20), min_size=0, max_size=4))
def test_any_attributions_file_reads_or_is_one_line_error(lines):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        try:
            found = attributions.read_attributions(path)
        except attributions.AttributionsError as err:
            message = str(err)
            assert message.startswith(f"{path}") and "\n" not in message, message
            assert len(message) < 400
            return
    assert found.split in ("train", "dev", "test")
    for rows in found.scores.values():
        for values in rows:
            assert np.isfinite(values.astype(np.float32)).all()
