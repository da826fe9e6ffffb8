"""The verdict rows of the summaries of self-attention: one per summary, read against the
random ranking's ERASER AOPC with a two-standard-error margin."""

from __future__ import annotations

from jaxattn.report.evidence import AGAINST, INCOMPLETE, MIXED, NOT_RUN, SUPPORTS, Evidence
from jaxattn.report.verdict import verdict_rows
from jaxattn.report.verdict_summaries import beats, summary_rows


def _stats(mean, std=0.1, n=100):
    return {"mean": mean, "std": std, "n": n, "median": mean}


def _summary(eraser=True):
    methods = {
        "sa_raw": {"label": "raw", "summary": True, "tau_loo": _stats(0.1)},
        "sa_rollout": {"label": "rollout", "summary": True, "tau_loo": _stats(0.2)},
        "sa_flow": {"label": "flow", "summary": True, "tau_loo": _stats(0.3)},
        "grad": {"label": "gradient", "summary": False, "tau_loo": _stats(0.4)},
    }
    jw = {"pooling_attention": False, "self_attention_summaries": {"methods": methods}}
    if eraser:
        # se of a difference: sqrt(2 * 0.1^2 / 100) = 0.0141; two of them: 0.0283
        jw["eraser"] = {"methods": {
            "random": {"aopc_comprehensiveness": _stats(0.10), "aopc_sufficiency": _stats(0.30)},
            "sa_raw": {"aopc_comprehensiveness": _stats(0.12), "aopc_sufficiency": _stats(0.29)},
            "sa_rollout": {"aopc_comprehensiveness": _stats(0.20),
                           "aopc_sufficiency": _stats(0.20)},
            "sa_flow": {"aopc_comprehensiveness": _stats(0.20), "aopc_sufficiency": _stats(0.31)},
        }}
    return jw


def test_each_summary_is_read_against_the_random_floor():
    rows = summary_rows(Evidence(jw=_summary(), jw_page=""))
    assert [r.test for r in rows] == [f"self-attention summary: {n}"
                                      for n in ("raw", "rollout", "flow")]
    assert [r.status for r in rows] == [AGAINST, SUPPORTS, MIXED]  # within 2 se, both, one
    assert "gradient~LOO tau 0.40" in rows[0].compared_with
    assert "Published (Abnar & Zuidema 2020)" in rows[1].reading
    assert "Published (Neely et al. 2022)" in rows[0].reading
    assert rows[0].evidence == "#stage-summaries"
    assert beats(_stats(0.1283), _stats(0.10), True) and not beats(_stats(0.128), _stats(0.1), True)
    assert beats(_stats(0.1), {"mean": None}, True) is None


def test_without_eraser_the_rows_are_incomplete_and_name_the_command():
    rows = summary_rows(Evidence(jw=_summary(eraser=False), run="runs/x"))
    assert {r.status for r in rows} == {INCOMPLETE}
    assert "jaxattn analyze --run runs/x --only summaries,eraser" in rows[0].reading
    missing = summary_rows(Evidence(jw={}))
    assert [r.status for r in missing] == [NOT_RUN]


def test_a_stage_may_give_several_rows_before_the_not_applicable_ones():
    ev = Evidence(jw=_summary(), stage_rows=(summary_rows,))
    rows = verdict_rows(ev)
    # a [CLS] head: the summaries' rows, which apply, come before the pooling-attention ones
    assert [r.status for r in rows[:3]] == [AGAINST, SUPPORTS, MIXED]
    assert len(rows) > 3 and all(r.status == "n/a" for r in rows[3:])
