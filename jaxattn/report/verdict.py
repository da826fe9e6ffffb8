"""The verdict: "is attention an explanation for this model?", one row per test, from summaries.

Every row is a pure function of :class:`Evidence` (the run's ``summary.json`` files and where their
report pages are) returning a :class:`Row`: the figure, what it is compared with, a plain-words
reading, a status, the source paper and a link to the section with the evidence. A test whose
stage has not run gives a ``not run`` row that says which command runs it; nothing is filled in.
Adding a test is one function and one entry in :data:`VERDICT_ROWS`.

Thresholds (each stated in the row's reading, none tuned on results):

* :data:`TAU_MARGIN` 0.10: attention's mean Kendall tau with gradient / leave-one-out counts as
  "lower than the baseline" only when it lies more than 0.10 below the two other methods' tau with
  each other. 0.10 is the tolerance this project already uses for reproducing J&W's means: gaps
  of that size come from the setting alone (embeddings, model selection; see the README), so a
  smaller one is not a property of attention.
* The output tolerance ``epsilon`` (0.05 TVD, J&W's): a mean median TVD under permutation below
  it means shuffling the weights leaves the output as unchanged as J&W's adversaries must.
* :data:`JSD_HALF` = ln(2) / 2: the adversaries "find very different attention" when their mean
  max JSD is at least half the largest possible JSD (ln 2). The midpoint takes no side.
* :data:`CHANCE_SE` 2: a model whose accuracy does not beat always answering the most frequent
  class by more than two binomial standard errors (``sqrt(m (1 - m) / n)``) has not shown that it
  learned the task; the verdict sentence says so, since every test then reads a model that
  decides nothing.
* W&P's yardstick: retraining with other seeds. An F1 gap counts only when it exceeds twice the
  sample sd of the seeds' F1 (the base included), the spread retraining alone produces; an
  adversary's attention counts as "different" when it is further (JSD) from the base's than the
  seeds' median while its outputs stay within the seeds' mean TVD.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from jaxattn.report.evidence import (  # noqa: F401  (the statuses are part of this module's API)
    AGAINST,
    INCOMPLETE,
    MIXED,
    NOT_APPLICABLE,
    NOT_NEEDED,
    NOT_RUN,
    RAN,
    STATUS_LABELS,
    SUPPORTS,
    Evidence,
    Row,
    analyze_command,
    get_path,
    href,
    not_run,
    number,
    wp_command,
)
from jaxattn.report.verdict_later import erasure, faithfulness, plausibility

TAU_MARGIN = 0.10
DEFAULT_EPSILON = 0.05  # J&W's output tolerance (AnalysisOptions.epsilon's default)
JSD_HALF = math.log(2.0) / 2
SEED_SPREAD = 2.0
CHANCE_SE = 2.0

JW = "Jain & Wallace 2019"
WP = "Wiegreffe & Pinter 2019"


def score_of(scores: Mapping | None) -> tuple[str, float | None]:
    """(name, value) of the test score W&P compare: F1 (binary) or accuracy."""
    if scores is None:
        return "F1", None
    if scores.get("f1") is not None:
        return "F1", float(scores["f1"])
    return "accuracy", scores.get("accuracy")


def seed_yardstick(wp: Mapping | None) -> float | None:
    """Twice the sample sd of the test score over the seeds (the base included); None without
    at least one extra seed."""
    per_seed = get_path(wp, "seeds.per_seed")
    if not per_seed:
        return None
    name, base = score_of(get_path(wp, "base"))
    values = [score_of(s)[1] for s in per_seed] + [base]
    values = [v for v in values if v is not None]
    return SEED_SPREAD * float(np.std(values, ddof=1)) if len(values) > 1 else None


# --------------------------------------------------------------------------------------------
# The rows


def tau_agreement(ev: Evidence) -> Row:
    test, source = "agreement with gradient and leave-one-out (Kendall tau)", JW
    compared = "gradient ~ leave-one-out tau (two other methods' agreement)"
    tau = {p: get_path(ev.jw, f"kendall.{p}.overall.mean") for p in ("attn_grad", "attn_loo", "grad_loo")}
    if tau["grad_loo"] is None:
        return not_run(test, compared, source, analyze_command(ev, "grad,loo"))
    base = tau["grad_loo"]
    figure = (f"tau attn~grad {number(tau['attn_grad'], '.2f')}, attn~LOO "
              f"{number(tau['attn_loo'], '.2f')}; grad~LOO {base:.2f}")
    if tau["attn_grad"] is None or tau["attn_loo"] is None:
        # Constant attention (or one value per row) ranks no token above another.
        reading = ("attention gives tokens tied weights, so it ranks nothing and its Kendall tau "
                   "with the other methods is not defined")
        return Row(test, figure, compared, reading, NOT_APPLICABLE, source,
                   href(ev.jw_page, "table2"))
    low = [tau[p] < base - TAU_MARGIN for p in ("attn_grad", "attn_loo")]
    if all(low):
        status, words = AGAINST, "attention ranks tokens unlike both gradient and LOO"
    elif any(low):
        status, words = MIXED, "attention agrees with one of gradient and LOO, not the other"
    else:
        status, words = SUPPORTS, "attention ranks tokens as much like gradient and LOO"
    reading = (f"{words}, measured against how much those two agree with each other "
               f"(lower = more than {TAU_MARGIN:.2f} below grad~LOO)")
    return Row(test, figure, compared, reading, status, source, href(ev.jw_page, "table2"))


def _epsilon(ev: Evidence) -> float:
    eps = get_path(ev.jw, "adversarial.epsilon")
    return DEFAULT_EPSILON if eps is None else float(eps)


def permutation(ev: Evidence) -> Row:
    test, source = "permuted attention", JW
    eps = _epsilon(ev)
    compared = f"the output tolerance epsilon = {eps:g} (TVD)"
    tvd = get_path(ev.jw, "permutation.median_tvd.overall.mean")
    if tvd is None:
        return not_run(test, compared, source, analyze_command(ev, "perm"))
    figure = f"median output TVD over permutations, mean {tvd:.3f}"
    if tvd < eps:
        status = AGAINST
        reading = (f"shuffling the weights over the tokens changes the output by less than "
                   f"{eps:g}: which token gets which weight hardly matters to the prediction")
    else:
        status = SUPPORTS
        reading = f"shuffling the weights changes the output by {eps:g} or more: where attention goes matters"
    return Row(test, figure, compared, reading, status, source, href(ev.jw_page, "stage-perm"))


def adversaries(ev: Evidence) -> Row:
    test, source = "adversarial attention within epsilon", JW
    eps = _epsilon(ev)
    compared = f"half the largest JSD, ln(2)/2 = {JSD_HALF:.3f}"
    jsd, found = get_path(ev.jw, "adversarial.max_jsd_mean"), get_path(ev.jw, "adversarial.frac_found")
    if jsd is None:
        return not_run(test, compared, source, analyze_command(ev, "adv"))
    figure = (f"mean max JSD {jsd:.3f} within output TVD {eps:g}; "
              f"found for {100 * (found or 0):.0f}% of instances")
    if jsd >= JSD_HALF:
        status = AGAINST
        reading = ("attention far from the model's own (JSD at least half the maximum) "
                   "gives the same output: the weights are not the only ones that explain it")
    else:
        status = SUPPORTS
        reading = "attention that keeps the output stays close to the model's own"
    return Row(test, figure, compared, reading, status, source, href(ev.jw_page, "stage-adv"))


def uniform_gap(ev: Evidence) -> Row:
    test, source = "uniform-attention gap", WP
    compared = f"the seed spread ({SEED_SPREAD:g} sd of the test score over seeds)"
    name, base = score_of(get_path(ev.wp, "base"))
    _, uniform = score_of(get_path(ev.wp, "uniform"))
    if uniform is None or base is None:
        return not_run(test, compared, source, wp_command(ev, "uniform"))
    gap = base - uniform
    figure = f"{name} learned {base:.3f}, uniform {uniform:.3f} (gap {gap:+.3f})"
    spread = seed_yardstick(ev.wp)
    link = href(ev.wp_page, "uniform")
    if spread is None:
        return Row(test, figure, compared, f"no seed yardstick yet — run `{wp_command(ev, 'seeds')}`",
                   INCOMPLETE, source, link)
    figure += f"; seed spread {spread:.3f}"
    if gap > spread:
        status = SUPPORTS
        reading = "learned attention scores better than uniform by more than retraining moves the score: the model needs its attention"
    else:
        status = NOT_NEEDED
        reading = ("uniform attention does as well (within the seed spread): attention is not "
                   "needed for this task, so the other tests say little about it")
    return Row(test, figure, compared, reading, status, source, link)


def _consistent_adversary(sweep: Sequence[Mapping], tvd_limit: float) -> Mapping | None:
    """The sweep row with the largest attention JSD among those within ``tvd_limit`` (test)."""
    inside = [r for r in sweep if r.get("tvd") is not None and r["tvd"] <= tvd_limit]
    return max(inside, key=lambda r: r["jsd"]) if inside else None


def seed_comparison(ev: Evidence) -> Row:
    test, source = "seed yardstick (model-consistent adversary)", WP
    compared = "the seeds' median attention JSD and mean output TVD to the base"
    seeds, sweep = get_path(ev.wp, "seeds"), get_path(ev.wp, "adversary.sweep")
    if not seeds:
        return not_run(test, compared, source, wp_command(ev, "seeds,adversary"))
    figure = f"seeds: JSD {seeds['jsd_median']:.3f}, TVD {seeds['tvd_mean']:.3f}"
    link = href(ev.wp_page, "adversary" if sweep else "seeds")
    if not sweep:
        return Row(test, figure, compared, f"no adversary to compare — run `{wp_command(ev, 'adversary')}`",
                   INCOMPLETE, source, link)
    chosen = _consistent_adversary(sweep, seeds["tvd_mean"])
    if chosen is None:
        best = min(sweep, key=lambda r: r["tvd"])
        figure += f"; every adversary's TVD above the seeds' (lowest {best['tvd']:.3f})"
        return Row(test, figure, compared, "no adversary keeps the outputs within the seeds' spread",
                   SUPPORTS, source, link)
    figure += (f"; adversary lambda {chosen['lambda']:g}: JSD {chosen['jsd']:.3f}, "
               f"TVD {chosen['tvd']:.3f}")
    if chosen["jsd"] > seeds["jsd_median"]:
        status = AGAINST
        reading = ("a model trained to keep the base's outputs (within the seeds' TVD) puts its "
                   "attention further from the base's than retraining does: the same predictions "
                   "come with other attention")
    else:
        status = SUPPORTS
        reading = ("no model that keeps the outputs within the seeds' TVD moves attention further "
                   "than retraining does")
    return Row(test, figure, compared, reading, status, source, link)


def diagnostic(ev: Evidence) -> Row:
    test, source = "diagnostic MLP", WP
    compared = f"the MLP with uniform attention, beyond the seed spread ({SEED_SPREAD:g} sd)"
    d = get_path(ev.wp, "diagnostic")
    if not d or "imposed" not in d or "uniform" not in d:
        return not_run(test, compared, source, wp_command(ev, "diagnostic"))
    name, imposed = score_of(d["imposed"])
    _, uniform = score_of(d["uniform"])
    figure = f"MLP {name}: imposed {imposed:.3f}, uniform {uniform:.3f}"
    if "learned" in d:
        figure += f", learned {score_of(d['learned'])[1]:.3f}"
    if "adversary" in d:
        figure += f", adversary's {score_of(d['adversary'])[1]:.3f}"
    spread = seed_yardstick(ev.wp)
    link = href(ev.wp_page, "diagnostic")
    if spread is None:
        return Row(test, figure, compared, f"no seed yardstick yet — run `{wp_command(ev, 'seeds')}`",
                   INCOMPLETE, source, link)
    if imposed - uniform > spread:
        status = SUPPORTS
        reading = ("imposing the base's weights lifts the MLP beyond the seed spread: they carry "
                   "token importance another model can use")
    else:
        status = AGAINST
        reading = "imposing the base's weights does not lift the MLP beyond the seed spread"
    return Row(test, figure, compared + f" = {spread:.3f}", reading, status, source, link)


VERDICT_ROWS: dict[str, Callable[[Evidence], Row]] = {
    "tau": tau_agreement,
    "permutation": permutation,
    "adversaries": adversaries,
    "uniform": uniform_gap,
    "seeds": seed_comparison,
    "diagnostic": diagnostic,
    "erasure": erasure,
    "faithfulness": faithfulness,
    "plausibility": plausibility,
}


NO_POOLING = ("the model has no pooling attention (a [CLS] head reads the first position); the "
              "importance measures it does have are in the tables")


def has_no_pooling_attention(ev: Evidence) -> bool:
    """Whether the J&W summary says the model has no pooling attention to test."""
    return get_path(ev.jw, "pooling_attention") is False


def verdict_rows(ev: Evidence) -> list[Row]:
    """The built-in studies' rows, then the rows that stages of their own declare. For a model
    without pooling attention every built-in row is "not applicable" (each tests that
    attention), so the stages' rows, the tests that do apply, come first."""
    built_in = list(built_in_rows(ev).values())
    if has_no_pooling_attention(ev):
        return stage_rows(ev) + built_in
    return built_in + stage_rows(ev)


def built_in_rows(ev: Evidence) -> dict[str, Row]:
    """The built-in studies' rows by their :data:`VERDICT_ROWS` key; "not applicable" for a
    model without pooling attention."""
    if has_no_pooling_attention(ev):
        return {key: Row(r.test, "–", r.compared_with, NO_POOLING, NOT_APPLICABLE, r.source)
                for key, r in ((key, row(Evidence())) for key, row in VERDICT_ROWS.items())}
    return {key: row(ev) for key, row in VERDICT_ROWS.items()}


def stage_rows(ev: Evidence) -> list[Row]:
    """The rows of the stages that declare their own: each gives one :class:`Row` or a list
    of them (one per summary, say)."""
    rows: list[Row] = []
    for row in ev.stage_rows:
        got = row(ev)
        rows.extend(got if isinstance(got, (list, tuple)) else [got])
    return rows


NOT_NEEDED_WHY = (
    "That happens when the encoder can carry what decides the label to every position (a BiLSTM "
    "counting class words, as on the generated synthetic task), so an average of its states "
    "loses nothing; to see the tests where attention matters, run a task whose label hangs on "
    "one position picked by a query: `jaxattn reproduce --dataset synthetic_aspects` (the "
    "demo's default), or bAbI / SNLI.")


def chance_caveat(ev: Evidence) -> str:
    """A warning when the model's accuracy does not beat always answering the most frequent
    class by more than :data:`CHANCE_SE` binomial standard errors ("" otherwise, or when the
    scores do not say: runs written before ``majority`` was recorded). It reads the run's test
    scores over the whole split, else the analysed instances' scores."""
    jw = ev.jw or {}
    for where, scores in (("test", get_path(jw, "setting.test_scores")),
                          ("analysed", jw.get("scores"))):
        if not isinstance(scores, Mapping):
            continue
        acc, share, n = scores.get("accuracy"), scores.get("majority"), scores.get("n")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (acc, share, n)):
            continue
        if n < 1:
            continue
        margin = CHANCE_SE * math.sqrt(share * (1 - share) / n)
        if acc - share > margin:
            return ""
        return (f"Read with care: this model's {where} accuracy ({acc:.3f} over {int(n):,}) does "
                f"not beat always answering the most frequent class ({share:.3f}) by more than "
                f"{CHANCE_SE:g} standard errors ({margin:.3f}), so it has not shown that it learned "
                "the task, and these tests read a model whose outputs may mean nothing.")
    return ""


def verdict_sentence(rows: Sequence[Row], ev: Evidence | None = None) -> str:
    """The plain-words verdict over ``rows``: which way the tests that ran lean, and what is
    missing; with ``ev``, then :func:`chance_caveat`'s warning if the model learned nothing."""
    text = _lean(rows)
    caveat = chance_caveat(ev) if ev is not None else ""
    return f"{text} {caveat}" if caveat else text


def _lean(rows: Sequence[Row]) -> str:
    ran = [r for r in rows if r.status in RAN]
    if not ran and rows and all(r.status == NOT_APPLICABLE for r in rows):
        return ("Not applicable: this model has no pooling attention to read as an "
                "explanation; gradient, leave-one-out and integrated gradients are reported.")
    waiting = sum(r.status in (NOT_RUN, INCOMPLETE) for r in rows)
    tail = f" {waiting} test{'s' if waiting != 1 else ''} not run or incomplete." if waiting else ""
    if not ran:
        return "No test of attention as an explanation has run for this model yet." + tail
    against = [r.test for r in rows if r.status == AGAINST]
    support = [r.test for r in rows if r.status == SUPPORTS]
    if len(against) > len(support):
        lead = "The tests lean against reading this model's attention as an explanation"
    elif len(support) > len(against):
        lead = "The tests lean towards reading this model's attention as an explanation"
    else:
        lead = "The tests are split on reading this model's attention as an explanation"
    parts = [f"{len(against)} of {len(ran)} that ran {'counts' if len(against) == 1 else 'count'} "
             "against it" + (f" ({'; '.join(against)})" if against else ""),
             f"{len(support)} {'is' if len(support) == 1 else 'are'} consistent with it"
             + (f" ({'; '.join(support)})" if support else "")]
    mixed = sum(r.status == MIXED for r in rows)
    if mixed:
        parts.append(f"{mixed} mixed")
    text = f"{lead}: {', '.join(parts)}."
    if any(r.status == NOT_NEEDED for r in rows):
        text += (" Uniform attention does as well as learned attention here, so the model does not "
                 "need its attention and the tests above say little about it. "
                 + NOT_NEEDED_WHY)
    return text + tail
