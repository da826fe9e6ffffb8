"""The verdict rows and sentence on hand-made summaries: every reading, every threshold's side."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxattn.report import verdict as v


def kendall(attn_grad: float, attn_loo: float, grad_loo: float) -> dict:
    return {p: {"overall": {"mean": m, "std": 0.2, "n": 50}}
            for p, m in (("attn_grad", attn_grad), ("attn_loo", attn_loo), ("grad_loo", grad_loo))}


def jw(**parts) -> dict:
    return {"setting": {"dataset": "sst2", "encoder": "bilstm"}, **parts}


def wp(base_f1=0.80, uniform_f1=None, seed_f1=None, seeds=None, sweep=None, diagnostic=None) -> dict:
    out = {"base": {"f1": base_f1, "accuracy": 0.8}}
    if uniform_f1 is not None:
        out["uniform"] = {"f1": uniform_f1}
    if seed_f1 is not None:
        out["seeds"] = {"per_seed": [{"seed": k + 1, "f1": f} for k, f in enumerate(seed_f1)],
                        "jsd_median": 0.08, "tvd_mean": 0.10, **(seeds or {})}
    if sweep is not None:
        out["adversary"] = {"sweep": sweep}
    if diagnostic is not None:
        out["diagnostic"] = diagnostic
    return out


def row(ev: v.Evidence, key: str) -> v.Row:
    return v.VERDICT_ROWS[key](ev)


def test_the_rows_are_the_tests_asked_for_in_order():
    assert list(v.VERDICT_ROWS) == ["tau", "permutation", "adversaries", "uniform", "seeds",
                                    "diagnostic", "erasure", "faithfulness", "plausibility"]


def test_nothing_run_gives_not_run_rows_with_the_command_to_run():
    rows = v.verdict_rows(v.Evidence(run="runs/x"))
    assert [r.status for r in rows] == [v.NOT_RUN] * len(rows)
    assert all(r.figure == "–" and r.evidence is None for r in rows)
    readings = {key: r.reading for key, r in zip(v.VERDICT_ROWS, rows)}
    assert readings["tau"] == "not run — run `jaxattn analyze --run runs/x --only grad,loo`"
    assert readings["uniform"] == "not run — run `jaxattn wp --run runs/x --only uniform`"
    assert readings["erasure"] == "not run — run `jaxattn analyze --run runs/x --only erasure`"
    assert readings["faithfulness"] == "not run — run `jaxattn analyze --run runs/x --only eraser`"
    assert v.verdict_sentence(rows).startswith("No test of attention as an explanation has run")


@pytest.mark.parametrize(("attn_grad", "attn_loo", "status"), [
    (0.30, 0.30, v.AGAINST),  # both more than 0.10 below grad~LOO 0.45
    (0.36, 0.30, v.MIXED),
    (0.351, 0.40, v.SUPPORTS),  # 0.099 below: within the margin
    (0.60, 0.55, v.SUPPORTS),  # above the baseline
])
def test_tau_against_the_gradient_loo_baseline(attn_grad, attn_loo, status):
    r = row(v.Evidence(jw=jw(kendall=kendall(attn_grad, attn_loo, 0.45)), jw_page=""), "tau")
    assert r.status == status
    assert r.figure == f"tau attn~grad {attn_grad:.2f}, attn~LOO {attn_loo:.2f}; grad~LOO 0.45"
    assert r.evidence == "#table2" and r.source == "Jain & Wallace 2019"


def test_permutation_reads_the_mean_median_tvd_against_epsilon():
    def perm(tvd, eps=None):
        summary = jw(permutation={"median_tvd": {"overall": {"mean": tvd}}})
        if eps is not None:
            summary["adversarial"] = {"epsilon": eps, "max_jsd_mean": 0.1, "frac_found": 1.0}
        return row(v.Evidence(jw=summary, jw_page="a.html"), "permutation")

    assert perm(0.02).status == v.AGAINST and perm(0.02).evidence == "a.html#stage-perm"
    assert perm(0.05).status == v.SUPPORTS  # at the tolerance: not below it
    assert perm(0.08, eps=0.1).status == v.AGAINST  # the analysis' own epsilon
    assert "epsilon = 0.1" in perm(0.08, eps=0.1).compared_with


def test_adversaries_against_half_the_largest_jsd():
    def adv(jsd):
        summary = jw(adversarial={"max_jsd_mean": jsd, "frac_found": 0.9, "epsilon": 0.05})
        return row(v.Evidence(jw=summary, jw_page=""), "adversaries")

    half = math.log(2) / 2
    assert adv(half).status == v.AGAINST and adv(half - 1e-6).status == v.SUPPORTS
    assert adv(0.5).figure == "mean max JSD 0.500 within output TVD 0.05; found for 90% of instances"


def test_seed_yardstick_is_two_sample_sds_of_the_seeds_and_base():
    summary = wp(base_f1=0.80, seed_f1=[0.82, 0.78, 0.81])
    assert v.seed_yardstick(summary) == pytest.approx(2 * np.std([0.82, 0.78, 0.81, 0.80], ddof=1))
    assert v.seed_yardstick(wp()) is None
    # No F1 (multi-class): the accuracy is the score.
    assert v.score_of({"accuracy": 0.7, "f1": None}) == ("accuracy", 0.7)


def test_uniform_gap_against_the_seed_spread():
    seeds = [0.81, 0.79, 0.80]  # with the base 0.80: sd 0.00816, yardstick 0.0163
    ev = lambda u: v.Evidence(wp=wp(0.80, u, seeds), wp_page="wp/index.html")  # noqa: E731
    assert row(ev(0.79), "uniform").status == v.NOT_NEEDED
    assert row(ev(0.75), "uniform").status == v.SUPPORTS
    assert row(ev(0.75), "uniform").evidence == "wp/index.html#uniform"
    without_seeds = row(v.Evidence(wp=wp(0.80, 0.75), run="R"), "uniform")
    assert without_seeds.status == v.INCOMPLETE and "jaxattn wp --run R --only seeds" in without_seeds.reading


def test_seed_comparison_takes_the_adversary_within_the_seeds_tvd():
    sweep = [{"lambda": 0.0, "tvd": 0.05, "jsd": 0.02}, {"lambda": 0.1, "tvd": 0.09, "jsd": 0.60},
             {"lambda": 10.0, "tvd": 0.30, "jsd": 0.69}]  # the last is outside the seeds' TVD 0.10
    r = row(v.Evidence(wp=wp(seed_f1=[0.8], sweep=sweep)), "seeds")
    assert r.status == v.AGAINST and "adversary lambda 0.1: JSD 0.600, TVD 0.090" in r.figure
    close = [{"lambda": 0.0, "tvd": 0.05, "jsd": 0.05}, sweep[2]]
    assert row(v.Evidence(wp=wp(seed_f1=[0.8], sweep=close)), "seeds").status == v.SUPPORTS
    far = [sweep[2]]
    assert row(v.Evidence(wp=wp(seed_f1=[0.8], sweep=far)), "seeds").status == v.SUPPORTS
    assert row(v.Evidence(wp=wp(seed_f1=[0.8])), "seeds").status == v.INCOMPLETE
    assert row(v.Evidence(wp=wp()), "seeds").status == v.NOT_RUN


def test_diagnostic_mlp_imposed_against_uniform():
    diag = lambda imposed: {"learned": {"f1": 0.8}, "uniform": {"f1": 0.78},  # noqa: E731
                            "imposed": {"f1": imposed}, "adversary": {"f1": 0.66}}
    seeds = [0.81, 0.79, 0.80]
    assert row(v.Evidence(wp=wp(seed_f1=seeds, diagnostic=diag(0.82))), "diagnostic").status == v.SUPPORTS
    r = row(v.Evidence(wp=wp(seed_f1=seeds, diagnostic=diag(0.79))), "diagnostic")
    assert r.status == v.AGAINST
    assert r.figure == "MLP F1: imposed 0.790, uniform 0.780, learned 0.800, adversary's 0.660"


def test_plausibility_ranks_attention_among_the_methods():
    def plaus(auprc):
        summary = jw(rationale={"auprc": {k: {"overall": {"mean": m}} for k, m in auprc.items()}})
        return row(v.Evidence(jw=summary, jw_page=""), "plausibility")

    low = plaus({"attn": 0.84, "grad": 0.98, "loo": 1.0, "ig": 0.99, "uniform": 0.16})
    assert low.status == v.AGAINST and low.figure.startswith("AUPRC attention 0.84, rank 4 of 4")
    assert low.evidence == "#rationale"
    assert plaus({"attn": 0.99, "grad": 0.98, "loo": 1.0, "uniform": 0.2}).status == v.SUPPORTS
    assert row(v.Evidence(jw=jw(), jw_page=""), "plausibility").status == v.NOT_APPLICABLE


def erasure_headline(attention: float, **others: float) -> dict:
    return {"erasure": {"headline": {"flip_top": 0.06, "flip_random": 0.01, "jsd_diff_mean": 0.02,
                                     "fraction_attention": 0.39, "mohankumar_attention": attention,
                                     "mohankumar_random": 0.9, "mohankumar_attention_low": 0.95,
                                     **{f"mohankumar_{k}": x for k, x in others.items()}}}}


def test_erasure_compares_attentions_order_with_the_other_rankings_median():
    # Others' median 0.70 (0.6, 0.7, 0.9); the random floor and attention low-first are ignored.
    late = row(v.Evidence(jw=jw(**erasure_headline(0.83, loo=0.6, ig=0.7, grad_attention=0.9)),
                          jw_page=""), "erasure")
    assert late.status == v.AGAINST and late.evidence == "#stage-erasure"
    assert late.figure == ("zeroing the top weight flips 6.0% of decisions, a random one 1.0%; "
                           "fraction removed before a flip (never = 1): attention 0.83, other "
                           "rankings' median 0.70 (flipping instances only: attention 0.39)")
    soon = row(v.Evidence(jw=jw(**erasure_headline(0.70, loo=0.6, ig=0.7, grad_attention=0.9))),
               "erasure")
    assert soon.status == v.SUPPORTS
    alone = row(v.Evidence(jw=jw(**erasure_headline(0.70))), "erasure")
    assert alone.status == v.INCOMPLETE


@pytest.mark.parametrize(("comp", "suff", "status"), [
    (1, 3, v.SUPPORTS), (4, 4, v.SUPPORTS), (5, 7, v.AGAINST), (2, 6, v.MIXED)])
def test_eraser_rank_halves_out_of_seven_methods(comp, suff, status):
    head = {"n_methods": 7, "attention_rank_comprehensiveness": comp,
            "attention_rank_sufficiency": suff,
            "aopc_comprehensiveness": {"attn": 0.157}, "aopc_sufficiency": {"attn": 0.082}}
    r = row(v.Evidence(jw=jw(eraser={"headline": head}), jw_page=""), "faithfulness")
    assert r.status == status and r.evidence == "#stage-eraser"
    assert r.figure == (f"rank {comp} of 7 on comprehensiveness (AOPC 0.157), "
                        f"{suff} of 7 on sufficiency (AOPC 0.082)")


def test_plausibility_reads_the_plausibility_stage_with_one_chance():
    # Chance is the share of rationale tokens, never the random ranking's AUPRC (one draw).
    head = {"auprc": {"attn": 0.82, "grad": 0.99, "loo": 0.98, "random": 0.28}, "chance": 0.14}
    r = row(v.Evidence(jw=jw(plausibility={"headline": head}), jw_page=""), "plausibility")
    assert r.status == v.AGAINST and r.evidence == "#stage-plausibility"
    assert r.figure == "AUPRC attention 0.82, rank 3 of 3; others 0.98-0.99; chance 0.14"
    # An older summary without it: the rationale table's chance row, the same definition.
    older = jw(plausibility={"headline": {"auprc": {**head["auprc"]}}},
               rationale={"auprc": {"uniform": {"overall": {"mean": 0.15}}}})
    assert row(v.Evidence(jw=older, jw_page=""), "plausibility").figure.endswith("chance 0.15")


def test_the_sentence_counts_the_tests_that_ran():
    mk = lambda status, test="t": v.Row(test, "", "", "", status, "")  # noqa: E731
    rows = [mk(v.AGAINST, "a"), mk(v.AGAINST, "b"), mk(v.SUPPORTS, "c"), mk(v.NOT_RUN)]
    text = v.verdict_sentence(rows)
    assert text.startswith("The tests lean against reading this model's attention as an explanation")
    assert "2 of 3 that ran count against it (a; b), 1 is consistent with it (c)." in text
    assert "1 of 1 that ran counts against it (a), 0 are consistent with it." in v.verdict_sentence(
        [mk(v.AGAINST, "a")])
    assert text.endswith("1 test not run or incomplete.")
    assert v.verdict_sentence([mk(v.SUPPORTS), mk(v.AGAINST)]).startswith("The tests are split")
    assert v.verdict_sentence([mk(v.SUPPORTS), mk(v.NOT_NEEDED)]).startswith("The tests lean towards")
    assert "does not need its attention" in v.verdict_sentence([mk(v.NOT_NEEDED)])
    # ... and says why, and what to run to see the tests where attention matters.
    assert "`jaxattn reproduce --dataset synthetic_aspects`" in v.verdict_sentence(
        [mk(v.NOT_NEEDED)])
    assert "synthetic_aspects" not in v.verdict_sentence([mk(v.SUPPORTS)])


def _scores(accuracy, majority, n):
    return {"accuracy": accuracy, "majority": majority, "n": n, "f1": 0.5}


@pytest.mark.parametrize("accuracy, majority, n, warned", [
    (0.345, 0.343, 9824, True),    # SNLI at chance: 0.002 above, two se = 0.0096
    (0.36, 0.343, 9824, False),     # 0.017 above: learned something
    (0.61, 0.50, 100, False),       # two se = 0.10 at 100 instances
    (0.58, 0.50, 100, True),
    (0.40, 0.50, 1821, True),       # worse than the majority answer
])
def test_the_sentence_warns_when_the_model_does_not_beat_the_majority_answer(
        accuracy, majority, n, warned):
    mk = v.Row("t", "", "", "", v.AGAINST, "")
    ev = v.Evidence(jw={"setting": {"test_scores": _scores(accuracy, majority, n)}})
    two_se = 2 * math.sqrt(majority * (1 - majority) / n)
    assert (accuracy - majority > two_se) is not warned
    text = v.verdict_sentence([mk], ev)
    assert text.startswith("The tests lean against")
    assert ("Read with care" in text) is warned
    if warned:
        assert f"test accuracy ({accuracy:.3f} over {n:,})" in text
        assert f"most frequent class ({majority:.3f})" in text and f"({two_se:.3f})" in text
    assert v.verdict_sentence([mk]) == v.verdict_sentence([mk], v.Evidence())


def test_the_warning_reads_the_analysed_scores_when_the_run_has_no_test_scores():
    mk = v.Row("t", "", "", "", v.AGAINST, "")
    ev = v.Evidence(jw={"setting": {"test_scores": None}, "scores": _scores(0.5, 0.5, 64)})
    assert "this model's analysed accuracy (0.500 over 64)" in v.verdict_sentence([mk], ev)
    # runs from before `majority` was recorded, or undefined numbers: no warning
    for scores in ({"accuracy": 0.5, "n": 64}, _scores(0.5, float("nan"), 64), _scores(0.5, 0.5, 0)):
        assert "Read with care" not in v.verdict_sentence([mk], v.Evidence(jw={"scores": scores}))


# Every number a J&W verdict row reads from summary.json; any of them may be null (a statistic
# that is not defined, e.g. a rank correlation of constant attention).
_JW_NUMBERS = (
    *(f"kendall.{p}.overall.mean" for p in ("attn_grad", "attn_loo", "grad_loo")),
    "permutation.median_tvd.overall.mean", "adversarial.max_jsd_mean",
    "adversarial.frac_found", "adversarial.epsilon",
    *(f"erasure.headline.{k}" for k in ("flip_top", "flip_random", "mohankumar_attention",
                                        "mohankumar_loo", "mohankumar_ig", "fraction_attention")),
    *(f"eraser.headline.{k}" for k in ("n_methods", "attention_rank_comprehensiveness",
                                       "attention_rank_sufficiency",
                                       "aopc_comprehensiveness.attn", "aopc_sufficiency.attn")),
    *(f"plausibility.headline.auprc.{k}" for k in ("attn", "grad", "loo", "random")),
)


def _nested(values: dict) -> dict:
    tree: dict = {}
    for dotted, value in values.items():
        *parts, last = dotted.split(".")
        node = tree
        for part in parts:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    key: st.none() | st.integers(1, 7) | st.floats(-1, 1, allow_nan=False) for key in _JW_NUMBERS
}))
def test_any_summary_with_undefined_numbers_gives_rows(values):
    rows = v.verdict_rows(v.Evidence(jw=jw(**_nested(values)), jw_page=""))
    assert len(rows) == len(v.VERDICT_ROWS)
    for r in rows:
        assert "None" not in r.figure and "nan" not in r.figure, r
