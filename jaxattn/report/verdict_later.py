"""The verdict rows of the post-2019 tests: erasure (Serrano & Smith 2019), ERASER
faithfulness and plausibility (DeYoung et al. 2020), read off the stages' headline figures
(:mod:`jaxattn.studies.jain_wallace.battery`)."""

from __future__ import annotations

import numpy as np

from jaxattn.report.evidence import (
    AGAINST,
    INCOMPLETE,
    MIXED,
    NOT_APPLICABLE,
    SUPPORTS,
    Evidence,
    Row,
    analyze_command,
    get_path,
    href,
    not_run,
    number,
)


def plausibility(ev: Evidence) -> Row:
    test, source = "plausibility: agreement with the rationale", "DeYoung et al. 2020"
    compared = "the other importance methods' AUPRC, and chance"
    if ev.jw is None:
        return not_run(test, compared, source, f"jaxattn analyze --run {ev.run}")
    # The plausibility stage's per-method means; else the rationale table's (older analyses).
    means = get_path(ev.jw, "plausibility.headline.auprc")
    link = href(ev.jw_page, "stage-plausibility" if means else "rationale")
    if not means:
        auprc = get_path(ev.jw, "rationale.auprc") or {}
        means = {k: get_path(v, "overall.mean") for k, v in auprc.items()}
    if "attn" not in means or means["attn"] is None:
        return Row(test, "–", compared, "the data set has no rationales", NOT_APPLICABLE, source)
    means = dict(means)
    # One chance for every page (explain.plausibility.CHANCE_DEFINITION): the share of rationale
    # tokens; the plausibility stage's random ranking is one draw above it, a floor of the ranks.
    means.pop("random", None)
    chance = means.pop("uniform", None)
    chance = get_path(ev.jw, "plausibility.headline.chance") or chance
    if chance is None:
        chance = get_path(ev.jw, "rationale.auprc.uniform.overall.mean")
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
    that order flips it at least as soon as the typical other informed ranking does (the median
    of the others is the yardstick, as for plausibility). The fraction compared is Mohankumar et
    al.'s (a never-flipping instance counts as 1.0), so that a ranking is not credited for the
    instances it never flips; Serrano & Smith's (flipping instances only) is shown beside it."""
    test, source = "erasure: decision flips", "Serrano & Smith 2019"
    compared = "removal in the order of gradient, LOO and IG rankings; zeroing a random weight"
    head = get_path(ev.jw, "erasure.headline")
    if not head:
        return not_run(test, compared, source, analyze_command(ev, "erasure"))
    figure = (f"zeroing the top weight flips {number(head.get('flip_top'), '.1f', 100)}% of "
              f"decisions, a random one {number(head.get('flip_random'), '.1f', 100)}%")
    attn = head.get("mohankumar_attention")
    others = {k: head.get(f"mohankumar_{k}") for k in _ERASURE_OTHERS}
    others = {k: v for k, v in others.items() if v is not None and np.isfinite(v)}
    link = href(ev.jw_page, "stage-erasure")
    if attn is None or not np.isfinite(attn) or not others:
        return Row(test, figure, compared, "no other ranking to compare with", INCOMPLETE,
                   source, link)
    middle = float(np.median(list(others.values())))
    figure += (f"; fraction removed before a flip (never = 1): attention {attn:.2f}, "
               f"other rankings' median {middle:.2f}")
    serrano = head.get("fraction_attention")
    if serrano is not None and np.isfinite(serrano):
        figure += f" (flipping instances only: attention {serrano:.2f})"
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
    head = get_path(ev.jw, "eraser.headline")
    if not head:
        return not_run(test, compared, source, analyze_command(ev, "eraser"))
    n = head.get("n_methods")
    comp, suff = head.get("attention_rank_comprehensiveness"), head.get("attention_rank_sufficiency")
    link = href(ev.jw_page, "stage-eraser")
    if comp is None or suff is None or n is None:
        return Row(test, "–", compared, "attention has no finite AOPC", INCOMPLETE, source, link)
    aopc_c = get_path(head, "aopc_comprehensiveness.attn")
    aopc_s = get_path(head, "aopc_sufficiency.attn")
    figure = (f"rank {comp} of {n} on comprehensiveness (AOPC {number(aopc_c, '.3f')}), "
              f"{suff} of {n} on sufficiency (AOPC {number(aopc_s, '.3f')})")
    middle = (n + 1) / 2
    if comp <= middle and suff <= middle:
        status, reading = SUPPORTS, "attention's top tokens are among the most decisive ones by deletion"
    elif comp > middle and suff > middle:
        status, reading = AGAINST, ("deleting attention's top tokens moves the prediction less, and "
                                    "keeping only them keeps it less, than most other methods")
    else:
        status, reading = MIXED, "attention ranks in the better half on one measure, the worse half on the other"
    return Row(test, figure, compared, reading, status, source, link)
