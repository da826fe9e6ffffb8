"""The W&P suite end to end on a tiny generated task: outputs, exactness of frozen attention, resume."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxattn.studies.wiegreffe_pinter.stages as wp_stages
import jaxattn.studies.wiegreffe_pinter.suite as wp
from jaxattn.cli import main
from jaxattn.config import load_config
from jaxattn.data.batching import eval_batches
from jaxattn.data.generators import make_synthetic
from jaxattn.data.prepare import prepare
from jaxattn.models.attention import uniform_attention
from jaxattn.runs.run import initial_params, load_run, train_run
from jaxattn.training.objective import AttentionSource, attention_for
from jaxattn.training.trainer import predict

TINY = ["data.name=synthetic", "model.encoder=average", "model.embed_dim=16", "model.hidden_size=8",
        "train.epochs=2", "train.batch_size=16", "train.buckets=[40]"]
LAMBDAS = (0.0, 1.0, 10.0)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A tiny base run and the whole suite over it (2 seeds, 3 lambdas)."""
    root = tmp_path_factory.mktemp("wp")
    cfg = load_config(None, TINY)
    dataset = make_synthetic(n_train=120, n_dev=40, n_test=48, seed=5)
    prepared = prepare(cfg.data, dataset=dataset)
    train_run(cfg, root / "base", progress=False, prepared=prepared)
    report = wp.wp_run(root / "base", seeds=2, lambdas=LAMBDAS, progress=False, dataset=dataset,
                       diagnostic_lambda=10.0, seed_mode="vmap")  # one compile for both seeds
    return root / "base", report, dataset, prepared


def test_writes_summary_tables_figures_and_report(suite):
    base_dir, report, _, _ = suite
    out = base_dir / "wp"
    assert report == out / "index.html" and report.exists()
    summary = json.loads((out / "summary.json").read_text())
    for key in ("uniform.f1", "base.f1", "seeds.jsd_median", "seeds.tvd_mean",
                *(f"diagnostic.{k}.f1" for k in ("learned", "uniform", "imposed", "adversary"))):
        value = summary
        for part in key.split("."):
            value = value[part]
        assert 0.0 <= value <= 1.0, key
    assert summary["base"]["f1"] == load_run(base_dir).metrics["test"]["f1"]
    sweep = summary["adversary"]["sweep"]
    assert [r["lambda"] for r in sweep] == list(LAMBDAS)
    for row in sweep:
        assert set(row) >= {"lambda", "tvd", "jsd", "f1"}
        assert 0.0 <= row["jsd"] <= np.log(2) and 0.0 <= row["tvd"] <= 1.0
    assert summary["seeds"]["seeds"] == [1, 2] and len(summary["seeds"]["f1"]) == 2
    assert 0.0 <= summary["seeds"]["dev_tvd_mean"] <= 1.0
    # The seeds' per-instance arrays agree with the summary.
    arrays = np.load(out / "seeds.npz")
    assert arrays["jsd"].shape == (2, 48)
    assert summary["seeds"]["jsd_median"] == pytest.approx(float(np.median(np.median(arrays["jsd"], 0))))
    assert summary["seeds"]["tvd_mean"] == pytest.approx(float(arrays["tvd"].mean()), rel=1e-5)
    for name in ("uniform", "seeds", "adversary", "diagnostic"):
        assert (out / "tables" / f"{name}.md").exists() and (out / "tables" / f"{name}.csv").exists()
    for name in ("seeds_violin", "seeds_scatter", "adversary_tradeoff", "adversary_violin"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    page = report.read_text()
    assert "figures/adversary_tradeoff.png" in page and "Diagnostic MLP" in page
    # Each adversary is a run directory, usable as imposed attention.
    adversary = load_run(out / "runs" / "adversary" / "lambda_10")
    assert json.loads((adversary.path / "metrics.json").read_text())["adversary"]["lambda"] == 10.0


def test_the_report_opens_with_the_verdict_of_every_wp_test(suite):
    from jaxattn.report.verdict import NOT_RUN, VERDICT_ROWS, verdict_rows
    from jaxattn.report.verdict_page import run_evidence

    base_dir, report, _, _ = suite
    page = report.read_text()
    assert page.index("<table") == page.index('<table class="verdict">')  # the first table
    summary = json.loads((base_dir / "wp" / "summary.json").read_text())
    rows = dict(zip(VERDICT_ROWS, verdict_rows(run_evidence(base_dir, base_dir / "wp"))))
    for key, anchor in (("uniform", "uniform"), ("seeds", "adversary"),
                        ("diagnostic", "diagnostic")):
        assert rows[key].status != NOT_RUN and rows[key].evidence == f"index.html#{anchor}"
        assert f'id="{anchor}"' in page
    assert f"learned {summary['base']['f1']:.3f}" in rows["uniform"].figure
    assert rows["tau"].status == NOT_RUN  # no J&W analysis of this base: says how to run it
    assert f"jaxattn analyze --run {base_dir}" in page


def _real_rows(prepared):
    split = prepared.splits["test"]
    return split, list(eval_batches(split, 16, (40,)))


def test_uniform_run_decodes_with_exactly_uniform_attention(suite):
    base_dir, _, _, prepared = suite
    run = load_run(base_dir / "wp" / "runs" / "uniform")
    assert run.config.train.attention == "uniform"
    # No gradient reaches the attention scorer and it has no weight decay: it stays at its init.
    init, _ = initial_params(run.config, run.model, prepared)
    for x, y in zip(jax.tree_util.tree_leaves(run.params["attention"]),
                    jax.tree_util.tree_leaves(init["attention"])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    split, batches = _real_rows(prepared)
    probs = predict(run.model, run.params, split, 16, (40,), AttentionSource("uniform"))
    for batch in batches:
        enc = run.model.encode(run.params, batch)
        mask = np.asarray(enc.mask)
        attn = np.where(mask, 1.0 / np.maximum(mask.sum(1, keepdims=True), 1), 0.0)
        np.testing.assert_array_equal(np.asarray(uniform_attention(enc.mask)), attn.astype(np.float32))
        direct = run.model.probs(run.model.decode(run.params, enc, jnp.asarray(attn, jnp.float32)))
        real = batch.index >= 0
        np.testing.assert_allclose(probs[batch.index[real]], np.asarray(direct)[real], rtol=1e-6)
    metrics = json.loads((run.path / "metrics.json").read_text())
    summary = json.loads((base_dir / "wp" / "summary.json").read_text())
    assert summary["uniform"]["f1"] == metrics["test"]["f1"]


@pytest.mark.parametrize("kind,source", [("imposed", None), ("adversary_lambda_10", "lambda_10")])
def test_imposed_attention_is_the_source_models_on_every_instance(suite, kind, source):
    base_dir, _, _, prepared = suite
    run = load_run(base_dir / "wp" / "runs" / "diagnostic" / kind)
    src_dir = base_dir if source is None else base_dir / "wp" / "runs" / "adversary" / source
    src = load_run(src_dir)
    assert run.config.model.encoder == "average" and run.config.train.attention == "imposed"
    assert load_run(run.config.train.imposed_run).path.resolve() == src_dir.resolve()
    split, batches = _real_rows(prepared)
    probs = predict(run.model, run.params, split, 16, (40,), AttentionSource("imposed", src.model),
                    src.params)
    seen = 0
    for batch in batches:
        _, src_attn = src.model.forward(src.params, batch)
        enc = run.model.encode(run.params, batch)
        imposed = attention_for(run.model, run.params, enc, batch,
                                AttentionSource("imposed", src.model), src.params)
        np.testing.assert_array_equal(np.asarray(imposed), np.asarray(src_attn))
        own = run.model.attend(run.params, enc)
        direct = run.model.probs(run.model.decode(run.params, enc, src_attn))
        real = batch.index >= 0
        np.testing.assert_allclose(probs[batch.index[real]], np.asarray(direct)[real], rtol=1e-6)
        assert not np.allclose(np.asarray(own)[real], np.asarray(src_attn)[real])
        seen += int(real.sum())
    assert seen == len(split)


def test_rerun_recomputes_nothing_and_new_parameters_recompute_one_stage(suite, monkeypatch):
    base_dir, _, dataset, _ = suite
    out = base_dir / "wp"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name != "summary.json"}

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a finished stage")

    for name in ("train_run", "train_seeds", "train_adversaries", "compare_members"):
        monkeypatch.setattr(wp_stages, name, refuse)
    wp.wp_run(base_dir, seeds=2, lambdas=LAMBDAS, progress=False, dataset=dataset,
              diagnostic_lambda=10.0)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")
                      if p.name != "summary.json"}
    # Choosing another adversary for the diagnostic reruns only that stage, and of its runs only
    # the new one trains.
    monkeypatch.setattr(wp_stages, "train_run", train_run)
    diag = out / "runs" / "diagnostic"
    before = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in diag.iterdir()}
    wp.wp_run(base_dir, only={"diagnostic"}, lambdas=LAMBDAS, progress=False, dataset=dataset,
              diagnostic_lambda=1.0)
    after = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in diag.iterdir()}
    assert set(after) - set(before) == {"adversary_lambda_1"}
    assert all(after[name] == stamp for name, stamp in before.items())
    assert (out / "adversary.json").stat().st_mtime_ns == stamps["adversary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostic"]["adversary"]["lambda"] == 1.0
    assert summary["diagnostic"]["params"]["adversary_run"].endswith("lambda_1")


def test_cli_rejects_unknown_stage(suite, capsys):
    base_dir = suite[0]
    assert main(["wp", "--run", str(base_dir), "--only", "uniform,bogus", "--quiet"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_diagnostic_adversary_is_the_most_divergent_consistent_one():
    sweep = [{"lambda": 0.0, "dev_tvd": 0.02, "dev_jsd": 0.05},
             {"lambda": 1.0, "dev_tvd": 0.08, "dev_jsd": 0.60},
             {"lambda": 10.0, "dev_tvd": 0.30, "dev_jsd": 0.69}]
    opts = wp.WPOptions()
    threshold, origin = wp.consistency_threshold(opts, {"dev_tvd_mean": 0.1})
    assert threshold == 0.1 and "seeds" in origin
    assert wp.choose_adversary(sweep, opts, threshold)[0]["lambda"] == 1.0
    fallback, _ = wp.consistency_threshold(opts, None)
    assert fallback == wp.FALLBACK_CONSISTENCY_TVD
    assert wp.choose_adversary(sweep, opts, fallback)[0]["lambda"] == 0.0
    row, why = wp.choose_adversary(sweep, opts, 0.01)  # none consistent: the closest
    assert row["lambda"] == 0.0 and why == "closest"
    assert wp.consistency_threshold(wp.WPOptions(consistency_tvd=0.5), {"dev_tvd_mean": 0.1})[0] == 0.5
    pinned = wp.WPOptions.from_kwargs(diagnostic_lambda=10.0)
    assert wp.choose_adversary(sweep, pinned, threshold)[0]["lambda"] == 10.0
    with pytest.raises(wp.ConfigError):
        wp.WPOptions.from_kwargs(bogus=1)
    assert wp.WPOptions.from_kwargs(test_selection=True).adversary.selection == "test"


def test_a_retrained_base_is_refused_rather_than_reusing_stale_stages(tmp_path):
    from jaxattn.core.errors import RunError

    cfg = load_config(None, ["data.name=synthetic", "data.limit_train=100",
                             "model.encoder=average", "model.embed_dim=8", "model.hidden_size=8",
                             "train.epochs=1", "train.buckets=[64]"])
    train_run(cfg, tmp_path / "run", progress=False)
    wp.wp_run(tmp_path / "run", only={"uniform"}, progress=False)
    assert (tmp_path / "run" / "wp" / "base.json").exists()
    wp.wp_run(tmp_path / "run", only={"uniform"}, progress=False)  # the same base: reused
    cfg.train.epochs = 2
    train_run(cfg, tmp_path / "run", progress=False)  # continues: other parameters
    with pytest.raises(RunError, match="another base model or data .the params changed"):
        wp.wp_run(tmp_path / "run", only={"uniform"}, progress=False)
