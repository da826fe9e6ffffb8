"""Verdict rows of the summaries of self-attention (the ``summaries`` stage): one per summary.

Each row reads ``summary["self_attention_summaries"]`` and the ``eraser`` stage's AOPCs from a
J&W ``summary.json``. A summary "beats" the random ranking on a measure when its mean AOPC is
better (comprehensiveness higher, sufficiency lower) by more than two standard errors of the
difference (:data:`MARGIN_SE`; unpaired, ``sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``), the spread two
rankings of the same instances show by chance. It counts as consistent with a faithful
explanation when it beats random on both, against when on neither, mixed when on one. The
random ranking is the floor every importance must beat, and two standard errors is the usual
two-sided 95% bound, so no threshold is tuned on results. Each reading ends with the published
point of that summary (:data:`~jaxattn.report.published.SELF_ATTENTION_PUBLISHED`), in short;
the stage's table gives each with its comparability in full.
"""

from __future__ import annotations

from jaxattn.report.evidence import (
    AGAINST,
    INCOMPLETE,
    MIXED,
    SUPPORTS,
    Evidence,
    Row,
    analyze_command,
    get_path,
    href,
    not_run,
    number,
)
from jaxattn.report.published import SELF_ATTENTION_PUBLISHED

SOURCES = {
    "sa_raw": "Jain & Wallace 2019; Neely et al. 2022",
    "sa_rollout": "Abnar & Zuidema 2020",
    "sa_flow": "Abnar & Zuidema 2020",
    "sa_chefer": "Chefer, Gur & Wolf 2021",
    "sa_norm": "Kobayashi et al. 2020",
    "sa_norm_ln": "Kobayashi et al. 2021",
    "sa_attr": "Hao et al. 2021",
}
ANCHOR = "stage-summaries"


MARGIN_SE = 2.0


def _published(key: str) -> str:
    points = [f" Published ({p['source']}): {p['short']}."
              for p in SELF_ATTENTION_PUBLISHED if key in p["keys"]]
    return "".join(points)


def beats(mine: dict, floor: dict, higher_better: bool) -> bool | None:
    """Whether the mean of ``mine`` is better than ``floor``'s by more than :data:`MARGIN_SE`
    standard errors of the difference (stats as :func:`jaxattn.explain.agreement.summarize`
    gives them); None where either is undefined."""
    try:
        diff = mine["mean"] - floor["mean"]
        se = (mine["std"] ** 2 / mine["n"] + floor["std"] ** 2 / floor["n"]) ** 0.5
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    if diff != diff or se != se:  # NaN: no instances
        return None
    return (diff if higher_better else -diff) > MARGIN_SE * se


def summary_rows(ev: Evidence) -> list[Row]:
    """One row per summary the stage computed (the ``summaries`` stage's ``verdict``)."""
    block = get_path(ev.jw, "self_attention_summaries")
    if block is None:
        return [not_run("summaries of self-attention", "the random ranking (ERASER AOPC)",
                        "Abnar & Zuidema 2020; Chefer et al. 2021",
                        analyze_command(ev, "summaries,eraser"))]
    eraser = get_path(ev.jw, "eraser.methods") or {}
    floor = eraser.get("random", {})
    link = href(ev.jw_page, ANCHOR)
    rows = []
    for key, m in block["methods"].items():
        if not m.get("summary"):
            continue
        test = f"self-attention summary: {m['label']}"
        tau_loo = get_path(m, "tau_loo.mean")
        mine = eraser.get(key)
        if mine is None or not floor:
            rows.append(Row(test, f"tau vs LOO {number(tau_loo, '.2f')} (per word)",
                            "the random ranking (ERASER AOPC)",
                            f"no ERASER figures yet — run `{analyze_command(ev, 'summaries,eraser')}`."
                            + _published(key), INCOMPLETE, SOURCES.get(key, ""), link))
            continue
        comp = get_path(mine, "aopc_comprehensiveness.mean")
        suff = get_path(mine, "aopc_sufficiency.mean")
        r_comp = get_path(floor, "aopc_comprehensiveness.mean")
        r_suff = get_path(floor, "aopc_sufficiency.mean")
        figure = (f"AOPC comprehensiveness {number(comp, '.3f')}, sufficiency "
                  f"{number(suff, '.3f')}; tau vs LOO {number(tau_loo, '.2f')} (per word)")
        baseline = get_path(block, "methods.grad.tau_loo.mean")
        compared = (f"random ranking: comprehensiveness {number(r_comp, '.3f')}, sufficiency "
                    f"{number(r_suff, '.3f')}; gradient~LOO tau {number(baseline, '.2f')}")
        better = (beats(mine.get("aopc_comprehensiveness"), floor.get("aopc_comprehensiveness"),
                        True),
                  beats(mine.get("aopc_sufficiency"), floor.get("aopc_sufficiency"), False))
        if None in better:
            rows.append(Row(test, figure, compared, "not defined on these instances."
                            + _published(key), INCOMPLETE, SOURCES.get(key, ""), link))
            continue
        if all(better):
            status, reading = SUPPORTS, ("its top tokens matter more than random ones both ways "
                                         "(deleting them hurts more, keeping them alone "
                                         "suffices better), by more than 2 standard errors")
        elif not any(better):
            status, reading = AGAINST, ("under ERASER it does not beat a random ranking by more "
                                        "than 2 standard errors")
        else:
            status = MIXED
            reading = ("it beats the random ranking by more than 2 standard errors on "
                       + ("comprehensiveness" if better[0] else "sufficiency") + " only")
        rows.append(Row(test, figure, compared, reading + "." + _published(key), status,
                        SOURCES.get(key, ""), link))
    return rows
