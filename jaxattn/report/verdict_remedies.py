"""Plain-words reading of the remedies comparison and the deception table.

Pure functions over the row dicts ``experiments/remedies.py`` writes (its column names), so the
report opens with sentences, not with data. The rules, stated once:

* **Remedy** (Orthogonal / Diversity LSTM against the vanilla BiLSTM of the same data set): a
  measure *moves* when it changes by at least :data:`MOVE` (all are on 0-1 scales). Attention is
  more faithful when the output depends more on it (permutation median TVD up), when removing
  weights in its order flips the decision sooner (erasure fraction down), when removing its top
  tokens costs more (comprehensiveness AOPC up) and when it agrees more with gradient / LOO
  (Kendall tau up). The sentence counts the measures that moved each way and names them.
* **Deception** (largest lambda against lambda 0 of the same data set): the model *still uses* the
  impermissible tokens ``I`` when its accuracy exceeds the accuracy with ``I`` deleted by at least
  :data:`USES`; an importance *still finds* ``I`` when its AUPRC exceeds chance (the share of
  ``I``) by at least :data:`FINDS`. Attention *deceives* when the model still uses ``I`` while
  attention no longer finds it.
"""

from __future__ import annotations

from collections.abc import Sequence

MOVE = 0.02
USES = 0.05
FINDS = 0.25

# column -> (direction in which attention is more faithful, words)
FAITHFUL_MEASURES: dict[str, tuple[int, str]] = {
    "perm median TVD": (+1, "permutation median TVD"),
    "erasure frac-to-flip": (-1, "fraction removed before a flip"),
    "comprehensiveness AOPC": (+1, "comprehensiveness AOPC"),
    "tau attn_grad": (+1, "Kendall tau with gradient"),
    "tau attn_loo": (+1, "Kendall tau with LOO"),
}
REMEDIES = ("orthogonal", "diversity")
OTHER_IMPORTANCES = ("grad", "loo", "ig")


def _present(value) -> bool:
    return isinstance(value, (int, float)) and value == value


def _by_data(rows: Sequence[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["data set"], []).append(row)
    return grouped


def _moves(vanilla: dict, remedy: dict) -> tuple[list[str], list[str]]:
    """(measures on which attention became more faithful, those on which it became less)."""
    better, worse = [], []
    for column, (sign, words) in FAITHFUL_MEASURES.items():
        before, after = vanilla.get(column), remedy.get(column)
        if not (_present(before) and _present(after)) or abs(after - before) < MOVE:
            continue
        (better if sign * (after - before) > 0 else worse).append(
            f"{words} {before:.2f} → {after:.2f}")
    return better, worse


def remedy_sentences(comparison: Sequence[dict]) -> list[str]:
    """One sentence per data set and remedy, against that data set's vanilla BiLSTM."""
    out = []
    for data, rows in _by_data(comparison).items():
        vanilla = next((r for r in rows if r["variant"] == "vanilla"), None)
        if vanilla is None:
            continue
        for remedy in (r for r in rows if r["variant"] in REMEDIES):
            name = f"the {remedy['variant'].capitalize()} LSTM"
            text = f"On {data}, {name}"
            if _present(vanilla.get("conicity")) and _present(remedy.get("conicity")):
                way = "lowers" if remedy["conicity"] < vanilla["conicity"] else "raises"
                text += (f" {way} conicity from {vanilla['conicity']:.2f} to "
                         f"{remedy['conicity']:.2f}")
            text += (f" at accuracy {remedy['accuracy']:.3f} (BiLSTM "
                     f"{vanilla['accuracy']:.3f})")
            better, worse = _moves(vanilla, remedy)
            if not better and not worse:
                text += f"; no faithfulness measure moves by {MOVE} or more."
            else:
                text += (f"; attention is more faithful on {len(better)} and less on "
                         f"{len(worse)} of the measures that moved")
                text += "".join(f"; {label}: {', '.join(items)}" for label, items in
                                (("more", better), ("less", worse)) if items) + "."
            out.append(text)
        out += _deceptive_sentence(data, vanilla, rows)
    return out


def _deceptive_sentence(data: str, vanilla: dict, rows: Sequence[dict]) -> list[str]:
    """The deceptive BiLSTM against the vanilla one, when both trained on the same data and
    attention's plausibility (agreement with the impermissible rationale) was measured."""
    row = next((r for r in rows if r["variant"] == "deceptive"
                and r.get("trained on", data) == data), None)
    column = "plausibility AUPRC"
    if row is None or not (_present(vanilla.get(column)) and _present(row.get(column))):
        return []
    return [f"On {data}, deceptive training (lambda 1, the rationale impermissible) moves "
            f"attention's plausibility AUPRC from {vanilla[column]:.2f} to {row[column]:.2f} at "
            f"accuracy {row['accuracy']:.3f} (BiLSTM {vanilla['accuracy']:.3f})."]


def deception_sentences(deception: Sequence[dict]) -> list[str]:
    """One sentence per data set: the largest lambda against lambda 0."""
    out = []
    for data, rows in _by_data(deception).items():
        base = next((r for r in rows if r["lambda"] == 0), None)
        top = max(rows, key=lambda r: r["lambda"])
        if base is None or top is base:
            continue
        lam = top["lambda"]
        text = (f"On {data}, lambda {lam:g} moves attention on the impermissible tokens from "
                f"{base['attention mass on I']:.1%} to {top['attention mass on I']:.2%} at "
                f"accuracy {top['accuracy']:.3f} (lambda 0: {base['accuracy']:.3f}; with them "
                f"deleted: {top['accuracy without I']:.3f})")
        uses = top["accuracy"] - top["accuracy without I"] >= USES
        chance = top.get("share of I")
        found = [name for name in OTHER_IMPORTANCES
                 if _present(chance) and _present(top.get(f"AUPRC {name}"))
                 and top[f"AUPRC {name}"] - chance >= FINDS]
        attn_finds = (_present(chance) and _present(top.get("AUPRC attn"))
                      and top["AUPRC attn"] - chance >= FINDS)
        if not uses:
            text += (". The penalised model does no better than without those tokens, so it "
                     "does not use them: its attention has nothing to hide.")
        elif attn_finds:
            text += (". The model still uses those tokens and attention still finds them: "
                     "the penalty did not make it deceptive.")
        else:
            text += ". The model still uses those tokens while attention no longer finds them: "
            text += "attention deceives"
            if found:
                aucs = ", ".join(f"{n} {top[f'AUPRC {n}']:.2f}" for n in found)
                text += (f", but {', '.join(found)} still rank them on top (AUPRC {aucs}; "
                         f"attention {top['AUPRC attn']:.2f}, chance {chance:.2f})")
            else:
                text += ", and gradient, LOO and IG do not find them either"
            text += "."
        out.append(text)
    return out


def remedies_verdict(comparison: Sequence[dict], deception: Sequence[dict]) -> str:
    """The report's opening: a Markdown list of the sentences above (empty when nothing ran)."""
    sentences = remedy_sentences(comparison) + deception_sentences(deception)
    if not sentences:
        return ""
    return "**Verdict.**\n\n" + "".join(f"- {s}\n" for s in sentences) + "\n"
