"""The remedies / deception sentences read the rows by the stated rules, on both sides of each."""

from jaxattn.report.verdict_remedies import (
    FINDS,
    MOVE,
    USES,
    deception_sentences,
    remedies_verdict,
    remedy_sentences,
)


def _row(variant, **values):
    base = {"data set": "sst2", "variant": variant, "accuracy": 0.81, "conicity": 0.7,
            "perm median TVD": 0.1, "erasure frac-to-flip": 0.5, "comprehensiveness AOPC": 0.2,
            "tau attn_grad": 0.4, "tau attn_loo": 0.3}
    return base | values


def test_remedy_counts_moves_by_direction():
    vanilla = _row("vanilla")
    ortho = _row("orthogonal", conicity=0.25, accuracy=0.8, **{
        "perm median TVD": 0.36, "erasure frac-to-flip": 0.1, "tau attn_grad": 0.13,
        "comprehensiveness AOPC": 0.2 + MOVE / 2})
    (sentence,) = remedy_sentences([vanilla, ortho])
    assert "lowers conicity from 0.70 to 0.25" in sentence
    assert "more faithful on 2 and less on 1" in sentence
    assert "permutation median TVD 0.10 → 0.36" in sentence
    assert "fraction removed before a flip 0.50 → 0.10" in sentence
    assert "less: Kendall tau with gradient 0.40 → 0.13" in sentence
    assert "AOPC" not in sentence  # moved less than MOVE


def test_remedy_without_moves_or_vanilla():
    assert "no faithfulness measure moves" in remedy_sentences(
        [_row("vanilla"), _row("diversity", conicity=0.2)])[0]
    assert remedy_sentences([_row("diversity")]) == []
    # missing measures (a stage that did not run) are not counted
    sparse = _row("diversity", **{"perm median TVD": None, "tau attn_grad": float("nan")})
    assert "moves" in remedy_sentences([_row("vanilla"), sparse])[0]


def _dec(lam, acc, without, mass, attn, others, share=0.2, data="synthetic"):
    row = {"data set": data, "lambda": lam, "accuracy": acc, "accuracy without I": without,
           "attention mass on I": mass, "share of I": share, "AUPRC attn": attn}
    return row | {f"AUPRC {n}": v for n, v in zip(("grad", "loo", "ig"), others)}


def test_deception_reads_use_and_finding():
    base = _dec(0.0, 0.99, 0.5, 0.86, 0.8, (0.99, 0.99, 0.99))
    deceives = _dec(1.0, 0.99, 0.5, 0.0004, 0.11, (0.9, 0.2 + FINDS - 0.01, 0.94))
    (sentence,) = deception_sentences([base, deceives])
    assert "attention deceives, but grad, ig still rank them on top" in sentence
    assert "86.0% to 0.04%" in sentence

    lost = _dec(1.0, 0.5 + USES - 0.01, 0.5, 0.001, 0.1, (0.2, 0.2, 0.2))
    assert "does not use them" in deception_sentences([base, lost])[0]

    honest = _dec(1.0, 0.99, 0.5, 0.3, 0.2 + FINDS, (0.9, 0.9, 0.9))
    assert "did not make it deceptive" in deception_sentences([base, honest])[0]

    hidden = _dec(1.0, 0.99, 0.5, 0.001, 0.1, (0.2, 0.2, 0.2))
    assert "do not find them either" in deception_sentences([base, hidden])[0]


def test_deception_needs_lambda_zero_and_verdict_opens_report():
    assert deception_sentences([_dec(1.0, 0.9, 0.5, 0.0, 0.1, (0.9,) * 3)]) == []
    assert remedies_verdict([], []) == ""
    text = remedies_verdict([_row("vanilla"), _row("orthogonal", conicity=0.2)], [])
    assert text.startswith("**Verdict.**") and text.count("\n- ") == 1


def test_deceptive_row_against_vanilla_only_on_the_same_data():
    vanilla = _row("vanilla", **{"plausibility AUPRC": 0.9})
    same = _row("deceptive", accuracy=0.99, **{"plausibility AUPRC": 0.1, "trained on": "sst2"})
    (sentence,) = remedy_sentences([vanilla, same])
    assert "plausibility AUPRC from 0.90 to 0.10 at accuracy 0.990" in sentence
    other = same | {"trained on": "sst2_distractors"}
    assert remedy_sentences([vanilla, other]) == []
    assert remedy_sentences([_row("vanilla"), same]) == []  # no plausibility for vanilla
