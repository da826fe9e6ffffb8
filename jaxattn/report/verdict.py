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
* W&P's yardstick: retraining with other seeds. An F1 gap counts only when it exceeds twice the
  sample sd of the seeds' F1 (the base included), the spread retraining alone produces; an
  adversary's attention counts as "different" when it is further (JSD) from the base's than the
  seeds' median while its outputs stay within the seeds' mean TVD.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

AGAINST = "against"  # the test counts against reading attention as an explanation
SUPPORTS = "consistent"  # the test is consistent with reading attention as an explanation
MIXED = "mixed"
NOT_NEEDED = "not needed"  # attention is not needed for the task: the other tests say little
INCOMPLETE = "incomplete"  # ran, but its yardstick needs another stage
NOT_RUN = "not run"
NOT_APPLICABLE = "n/a"
RAN = (AGAINST, SUPPORTS, MIXED, NOT_NEEDED)

STATUS_LABELS = {
    AGAINST: "against",
    SUPPORTS: "consistent with",
    MIXED: "mixed",
    NOT_NEEDED: "attention not needed",
    INCOMPLETE: "incomplete",
    NOT_RUN: "not run",
    NOT_APPLICABLE: "not applicable",
}

TAU_MARGIN = 0.10
DEFAULT_EPSILON = 0.05  # J&W's output tolerance (AnalysisOptions.epsilon's default)
JSD_HALF = math.log(2.0) / 2
SEED_SPREAD = 2.0

JW = "Jain & Wallace 2019"
WP = "Wiegreffe & Pinter 2019"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a verdict reads.

    Attributes:
      jw: the J&W analysis ``summary.json`` (None: not analysed).
      wp: the W&P suite's ``summary.json`` (None: not run).
      jw_page: href of the J&W report from the verdict's page ("" for the same page).
      wp_page: href of the W&P report from the verdict's page.
      run: the run directory as commands should name it.
    """

    jw: Mapping | None = None
    wp: Mapping | None = None
    jw_page: str | None = None
    wp_page: str | None = None
    run: str = "RUN"


@dataclasses.dataclass(frozen=True)
class Row:
    test: str
    figure: str
    compared_with: str
    reading: str
    status: str
    source: str
    evidence: str | None = None  # href (with anchor) of the section holding the evidence


def _get(tree: Mapping | None, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _href(page: str | None, anchor: str) -> str | None:
    return None if page is None else f"{page}#{anchor}"


def _not_run(test: str, compared_with: str, source: str, command: str) -> Row:
    return Row(test, "–", compared_with, f"not run — run `{command}`", NOT_RUN, source)


def _analyze(ev: Evidence, only: str) -> str:
    return f"jaxattn analyze --run {ev.run} --only {only}"


def _wp(ev: Evidence, only: str) -> str:
    return f"jaxattn wp --run {ev.run} --only {only}"


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
    per_seed = _get(wp, "seeds.per_seed")
    if not per_seed:
        return None
    name, base = score_of(_get(wp, "base"))
    values = [score_of(s)[1] for s in per_seed] + [base]
    values = [v for v in values if v is not None]
    return SEED_SPREAD * float(np.std(values, ddof=1)) if len(values) > 1 else None


# --------------------------------------------------------------------------------------------
# The rows


def tau_agreement(ev: Evidence) -> Row:
    test, source = "agreement with gradient and leave-one-out (Kendall tau)", JW
    compared = "gradient ~ leave-one-out tau (two other methods' agreement)"
    tau = {p: _get(ev.jw, f"kendall.{p}.overall.mean") for p in ("attn_grad", "attn_loo", "grad_loo")}
    if tau["grad_loo"] is None:
        return _not_run(test, compared, source, _analyze(ev, "grad,loo"))
    base = tau["grad_loo"]
    figure = (f"tau attn~grad {tau['attn_grad']:.2f}, attn~LOO {tau['attn_loo']:.2f}; "
              f"grad~LOO {base:.2f}")
    low = [tau[p] < base - TAU_MARGIN for p in ("attn_grad", "attn_loo")]
    if all(low):
        status, words = AGAINST, "attention ranks tokens unlike both gradient and LOO"
    elif any(low):
        status, words = MIXED, "attention agrees with one of gradient and LOO, not the other"
    else:
        status, words = SUPPORTS, "attention ranks tokens as much like gradient and LOO"
    reading = (f"{words}, measured against how much those two agree with each other "
               f"(lower = more than {TAU_MARGIN:.2f} below grad~LOO)")
    return Row(test, figure, compared, reading, status, source, _href(ev.jw_page, "table2"))


def _epsilon(ev: Evidence) -> float:
    eps = _get(ev.jw, "adversarial.epsilon")
    return DEFAULT_EPSILON if eps is None else float(eps)


def permutation(ev: Evidence) -> Row:
    test, source = "permuted attention", JW
    eps = _epsilon(ev)
    compared = f"the output tolerance epsilon = {eps:g} (TVD)"
    tvd = _get(ev.jw, "permutation.median_tvd.overall.mean")
    if tvd is None:
        return _not_run(test, compared, source, _analyze(ev, "perm"))
    figure = f"median output TVD over permutations, mean {tvd:.3f}"
    if tvd < eps:
        status = AGAINST
        reading = (f"shuffling the weights over the tokens changes the output by less than "
                   f"{eps:g}: which token gets which weight hardly matters to the prediction")
    else:
        status = SUPPORTS
        reading = f"shuffling the weights changes the output by {eps:g} or more: where attention goes matters"
    return Row(test, figure, compared, reading, status, source, _href(ev.jw_page, "stage-perm"))


def adversaries(ev: Evidence) -> Row:
    test, source = "adversarial attention within epsilon", JW
    eps = _epsilon(ev)
    compared = f"half the largest JSD, ln(2)/2 = {JSD_HALF:.3f}"
    jsd, found = _get(ev.jw, "adversarial.max_jsd_mean"), _get(ev.jw, "adversarial.frac_found")
    if jsd is None:
        return _not_run(test, compared, source, _analyze(ev, "adv"))
    figure = (f"mean max JSD {jsd:.3f} within output TVD {eps:g}; "
              f"found for {100 * (found or 0):.0f}% of instances")
    if jsd >= JSD_HALF:
        status = AGAINST
        reading = ("attention far from the model's own (JSD at least half the maximum) "
                   "gives the same output: the weights are not the only ones that explain it")
    else:
        status = SUPPORTS
        reading = "attention that keeps the output stays close to the model's own"
    return Row(test, figure, compared, reading, status, source, _href(ev.jw_page, "stage-adv"))


def uniform_gap(ev: Evidence) -> Row:
    test, source = "uniform-attention gap", WP
    compared = f"the seed spread ({SEED_SPREAD:g} sd of the test score over seeds)"
    name, base = score_of(_get(ev.wp, "base"))
    _, uniform = score_of(_get(ev.wp, "uniform"))
    if uniform is None or base is None:
        return _not_run(test, compared, source, _wp(ev, "uniform"))
    gap = base - uniform
    figure = f"{name} learned {base:.3f}, uniform {uniform:.3f} (gap {gap:+.3f})"
    spread = seed_yardstick(ev.wp)
    link = _href(ev.wp_page, "uniform")
    if spread is None:
        return Row(test, figure, compared, f"no seed yardstick yet — run `{_wp(ev, 'seeds')}`",
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
    seeds, sweep = _get(ev.wp, "seeds"), _get(ev.wp, "adversary.sweep")
    if not seeds:
        return _not_run(test, compared, source, _wp(ev, "seeds,adversary"))
    figure = f"seeds: JSD {seeds['jsd_median']:.3f}, TVD {seeds['tvd_mean']:.3f}"
    link = _href(ev.wp_page, "adversary" if sweep else "seeds")
    if not sweep:
        return Row(test, figure, compared, f"no adversary to compare — run `{_wp(ev, 'adversary')}`",
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
    d = _get(ev.wp, "diagnostic")
    if not d or "imposed" not in d or "uniform" not in d:
        return _not_run(test, compared, source, _wp(ev, "diagnostic"))
    name, imposed = score_of(d["imposed"])
    _, uniform = score_of(d["uniform"])
    figure = f"MLP {name}: imposed {imposed:.3f}, uniform {uniform:.3f}"
    if "learned" in d:
        figure += f", learned {score_of(d['learned'])[1]:.3f}"
    if "adversary" in d:
        figure += f", adversary's {score_of(d['adversary'])[1]:.3f}"
    spread = seed_yardstick(ev.wp)
    link = _href(ev.wp_page, "diagnostic")
    if spread is None:
        return Row(test, figure, compared, f"no seed yardstick yet — run `{_wp(ev, 'seeds')}`",
                   INCOMPLETE, source, link)
    if imposed - uniform > spread:
        status = SUPPORTS
        reading = ("imposing the base's weights lifts the MLP beyond the seed spread: they carry "
                   "token importance another model can use")
    else:
        status = AGAINST
        reading = "imposing the base's weights does not lift the MLP beyond the seed spread"
    return Row(test, figure, compared + f" = {spread:.3f}", reading, status, source, link)


def plausibility(ev: Evidence) -> Row:
    test, source = "plausibility: agreement with the rationale", "DeYoung et al. 2020"
    compared = "the other importance methods' AUPRC, and chance"
    if ev.jw is None:
        return _not_run(test, compared, source, f"jaxattn analyze --run {ev.run}")
    # The plausibility stage's per-method means; else the rationale table's (older analyses).
    means = _get(ev.jw, "plausibility.headline.auprc")
    link = _href(ev.jw_page, "stage-plausibility" if means else "rationale")
    if not means:
        auprc = _get(ev.jw, "rationale.auprc") or {}
        means = {k: _get(v, "overall.mean") for k, v in auprc.items()}
    if "attn" not in means or means["attn"] is None:
        return Row(test, "–", compared, "the data set has no rationales", NOT_APPLICABLE, source)
    means = dict(means)
    chance = means.pop("uniform", None)
    chance = means.pop("random", chance)
    others = {k: v for k, v in means.items() if k != "attn" and v is not None}
    attn = means["attn"]
    rank = 1 + sum(v > attn for v in others.values())
    figure = f"AUPRC attention {attn:.2f}, rank {rank} of {len(others) + 1}"
    figure += (f"; others {min(others.values()):.2f}-{max(others.values()):.2f}" if others else "")
    figure += f"; chance {chance:.2f}" if chance is not None else ""
    if not others:
        return Row(test, figure, compared, "no other method to compare with", INCOMPLETE, source, link)
    middle = float(np.median(list(others.values())))
    if attn >= middle:
        status, reading = SUPPORTS, "attention finds the rationale at least as well as the typical other method"
    else:
        status, reading = AGAINST, "attention finds the rationale less well than the typical other method"
    reading += f" (their median AUPRC {middle:.2f}); plausible is not the same as faithful"
    return Row(test, figure, compared, reading, status, source, link)


# Rankings the erasure row compares attention with: the informed ones (not attention low-first,
# which is attention's own order reversed, nor the random floor).
_ERASURE_OTHERS = ("grad_attention", "attention_x_grad", "attention_x_sign_grad", "loo", "ig")


def erasure(ev: Evidence) -> Row:
    """Serrano & Smith's test: attention's order explains the decision if removing weights in
    that order flips it at least as soon (smaller fraction of tokens removed) as the typical
    other informed ranking does; the median of the others is the yardstick, as for plausibility."""
    test, source = "erasure: decision flips", "Serrano & Smith 2019"
    compared = "removal in the order of gradient, LOO and IG rankings; zeroing a random weight"
    head = _get(ev.jw, "erasure.headline")
    if not head:
        return _not_run(test, compared, source, _analyze(ev, "erasure"))
    figure = (f"zeroing the top weight flips {100 * head['flip_top']:.1f}% of decisions, "
              f"a random one {100 * head['flip_random']:.1f}%")
    attn = head.get("fraction_attention")
    others = {k: head.get(f"fraction_{k}") for k in _ERASURE_OTHERS}
    others = {k: v for k, v in others.items() if v is not None and np.isfinite(v)}
    link = _href(ev.jw_page, "stage-erasure")
    if attn is None or not np.isfinite(attn) or not others:
        return Row(test, figure, compared, "no instance flipped in attention's order, or no "
                   "other ranking to compare with", INCOMPLETE, source, link)
    middle = float(np.median(list(others.values())))
    figure += (f"; fraction removed before a flip: attention {attn:.2f}, "
               f"other rankings' median {middle:.2f}")
    if attn <= middle:
        status = SUPPORTS
        reading = "removing weights in attention's order flips the decision as soon as the typical other ranking"
    else:
        status = AGAINST
        reading = ("other rankings flip the decision after removing fewer tokens: attention's "
                   "order is not the one the decision rests on")
    return Row(test, figure, compared, reading, status, source, link)


def faithfulness(ev: Evidence) -> Row:
    """ERASER: attention's place among the importance methods (random floor included) on
    comprehensiveness (higher better) and sufficiency (lower better) AOPC. In the better half on
    both: consistent; in the worse half on both: against; otherwise mixed."""
    test, source = "ERASER: attention's rank on comprehensiveness / sufficiency", "DeYoung et al. 2020"
    compared = "gradient, LOO, IG, norm and a random ranking"
    head = _get(ev.jw, "eraser.headline")
    if not head:
        return _not_run(test, compared, source, _analyze(ev, "eraser"))
    n = head["n_methods"]
    comp, suff = head.get("attention_rank_comprehensiveness"), head.get("attention_rank_sufficiency")
    link = _href(ev.jw_page, "stage-eraser")
    if comp is None or suff is None:
        return Row(test, "–", compared, "attention has no finite AOPC", INCOMPLETE, source, link)
    aopc_c = head["aopc_comprehensiveness"]["attn"]
    aopc_s = head["aopc_sufficiency"]["attn"]
    figure = (f"rank {comp} of {n} on comprehensiveness (AOPC {aopc_c:.3f}), "
              f"{suff} of {n} on sufficiency (AOPC {aopc_s:.3f})")
    middle = (n + 1) / 2
    if comp <= middle and suff <= middle:
        status, reading = SUPPORTS, "attention's top tokens are among the most decisive ones by deletion"
    elif comp > middle and suff > middle:
        status, reading = AGAINST, ("deleting attention's top tokens moves the prediction less, and "
                                    "keeping only them keeps it less, than most other methods")
    else:
        status, reading = MIXED, "attention ranks in the better half on one measure, the worse half on the other"
    return Row(test, figure, compared, reading, status, source, link)


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


def verdict_rows(ev: Evidence) -> list[Row]:
    return [row(ev) for row in VERDICT_ROWS.values()]


def verdict_sentence(rows: Sequence[Row]) -> str:
    """The plain-words verdict over ``rows``: which way the tests that ran lean, and what is
    missing."""
    ran = [r for r in rows if r.status in RAN]
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
                 "need its attention and the tests above say little about it.")
    return text + tail
