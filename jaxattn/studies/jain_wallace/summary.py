"""The analysed instances as read back from result files, and the numbers of ``summary.json``.

Nothing here touches a model: :class:`AnalysisData` is built from a report folder's
``instances.npz`` / ``instances.json`` and stage files, so a report can be rebuilt anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxattn.core.errors import RunError
from jaxattn.core.metrics import classification_scores
from jaxattn.data.tokenizers import sum_over_words
from jaxattn.explain import agreement
from jaxattn.report import plots
from jaxattn.report.timings import compile_summary
from jaxattn.runtime.files import read_json, strict_json_value
from jaxattn.studies.self_attention.summaries import SUMMARY_KEYS
from jaxattn.studies.stage_cache import load_stage

PAIRS = (
    ("attn", "grad"),
    ("attn", "grad_through"),
    ("attn", "loo"),
    ("attn", "ig"),
    ("grad", "loo"),
    ("grad", "ig"),
    ("loo", "ig"),
    ("grad", "grad_through"),
    ("attn", "norm"),
    ("norm", "loo"),
    # The summaries of self-attention against gradient and leave-one-out (models with the seam).
    *((key, other) for key in SUMMARY_KEYS for other in ("grad", "loo")),
)
PAIR_NAMES = {f"{a}_{b}": (a, b) for a, b in PAIRS}
VALUE_MEASURES = ("spearman", "pearson", "weighted_tau", "jsd", "topk_overlap")


@dataclasses.dataclass
class AnalysisData:
    """The analysed instances of one report: base arrays plus whatever stages exist.

    Token arrays are <[N, T]> with the real tokens where ``mask`` is True.
    """

    mask: np.ndarray  # <bool>[N, T]
    labels: np.ndarray  # <int>[N]
    index: np.ndarray  # <int>[N] rows of the split
    class_names: tuple[str, ...]
    task: str
    rationale: np.ndarray | None  # <bool>[N, T]
    words: list[list[str]]  # the real tokens of each instance, as text
    queries: list[list[str] | None]
    setting: dict
    labels_of: dict[str, str]  # importance key -> label, in display order
    stages: dict[str, dict[str, np.ndarray]]
    meta: dict[str, dict]
    # Pretrained tokenizers: the analyses score word pieces; ``word_index`` <int>[N, T] maps
    # each piece to its word of ``words`` (-1: not a piece of a word) and ``pieces`` names the
    # real tokens. None when every token is a word (the word vocabulary).
    word_index: np.ndarray | None = None
    pieces: list[list[str]] | None = None

    @property
    def tokens(self) -> list[list[str]]:
        """The real tokens of each instance as text: the pieces, or the words."""
        return self.pieces if self.pieces is not None else self.words

    def word_values(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-piece ``values`` <float>[N, T] as per-word values <float64>[N, W] (the rule:
        a word's value is the sum of its pieces'), with the word mask <bool>[N, W]."""
        W = max((len(w) for w in self.words), default=0)
        counts = np.asarray([len(w) for w in self.words])
        mask = np.arange(W)[None, :] < counts[:, None]
        return sum_over_words(np.asarray(values, np.float64), self.word_index, W), mask

    def word_row(self, values: np.ndarray, row: int) -> np.ndarray:
        """<float64>[len(words[row])] row ``row`` of per-piece ``values`` <[N, T]> per word
        (the sum of each word's pieces)."""
        index = self.word_index[row]
        out = np.zeros(len(self.words[row]))
        np.add.at(out, index[index >= 0], np.asarray(values[row], np.float64)[index >= 0])
        return out

    def word_rationale(self) -> np.ndarray | None:
        """<bool>[N, W] the rationale per word: a word is in it when its pieces are."""
        if self.rationale is None:
            return None
        return self.word_values(self.rationale.astype(np.float64))[0] > 0

    @property
    def probs(self) -> np.ndarray:
        return self.stages["attention"]["probs"]

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(-1)

    @property
    def attn(self) -> np.ndarray:
        return self.stages["attention"]["attn"]

    @property
    def has_attention(self) -> bool:
        """Whether the model has a pooling attention (a [CLS] head has none)."""
        return "attn" in self.stages["attention"]

    @property
    def max_attention(self) -> np.ndarray | None:
        return self.attn.max(axis=-1) if self.has_attention else None

    def importances(self) -> dict[str, np.ndarray]:
        """Key -> <float>[N, T] for every importance computed so far (attention first)."""
        out = {}
        for name in self.labels_of:
            for arrays in self.stages.values():
                if name in arrays:
                    out[name] = arrays[name]
        return out

    def figure_classes(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Classes to split figures by: the predicted class (QA: all instances together)."""
        if self.task == "qa":
            return np.zeros(len(self.labels), int), ("all",)
        return self.predicted, self.class_names

    def by_class(self, values: np.ndarray, pvalues: np.ndarray | None = None) -> dict:
        return agreement.summarize_by_class(
            values, self.predicted, self.labels, self.class_names, pvalues
        )

    def real(self, values: np.ndarray, row: int) -> np.ndarray:
        """Row ``row`` of a token array, at its real tokens only."""
        return values[row][self.mask[row]]


def bin_summaries(values: np.ndarray, max_attention: np.ndarray) -> dict:
    """Summaries of ``values`` per bin of the maximum attention weight."""
    which = plots.assign_bins(max_attention)
    labels = plots.bin_labels(plots.MAX_ATTENTION_BINS)
    return {labels[b]: agreement.summarize(values[which == b]) for b in range(len(labels))}


def pairwise_agreement(
    data: AnalysisData, topk: int, progress: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """Per-instance agreement measures (:func:`agreement.agreement_measures`) of every pair of
    importances computed so far, keyed ``"<a>_<b>"``."""
    imps = data.importances()
    pairs = [(a, b) for a, b in PAIRS if a in imps and b in imps]
    return {
        f"{a}_{b}": _measures(imps[a], imps[b], data.mask, topk)
        for a, b in tqdm(pairs, desc="agreement", disable=not progress, leave=False)
    }


def _measures(a: np.ndarray, b: np.ndarray, mask: np.ndarray, topk: int) -> dict:
    """:func:`agreement.agreement_measures`, NaN on rows where either importance is not finite
    on a real token (attention flow beyond its length limit)."""
    finite = np.all((np.isfinite(a) & np.isfinite(b)) | ~np.asarray(mask, bool), axis=-1)
    if finite.all():
        return agreement.agreement_measures(a, b, mask, topk)
    out = agreement.agreement_measures(np.nan_to_num(a), np.nan_to_num(b), mask, topk)
    return {k: np.where(finite, np.asarray(v, np.float64), np.nan) for k, v in out.items()}


def build_summary(
    data: AnalysisData, pairs: dict[str, dict[str, np.ndarray]], stage_summaries: Sequence[dict]
) -> dict:
    """Everything the report shows, as plain numbers.

    Args:
      pairs: :func:`pairwise_agreement` of ``data``.
      stage_summaries: the ``summarize`` output of every stage that has one.
    """
    summary: dict = {
        "setting": data.setting,
        "n": int(len(data.labels)),
        "pooling_attention": data.has_attention,
        "scores": classification_scores(data.probs, data.labels, data.task == "binary"),
        "max_attention": data.by_class(data.max_attention) if data.has_attention else None,
        "kendall": {},
        "agreement": {m: {} for m in VALUE_MEASURES},
        "timings": {name: data.meta[name].get("seconds") for name in data.meta},
        "compile": compile_summary(data.meta),
    }
    for key, values in pairs.items():
        summary["kendall"][key] = data.by_class(values["kendall"], values["kendall_p"])
        for measure in VALUE_MEASURES:
            summary["agreement"][measure][key] = data.by_class(values[measure])
    imps = data.importances()
    if data.rationale is not None:
        chance = data.mask.astype(np.float64)  # every token tied: precision = share of rationale
        scored = {**imps, "uniform": chance}
        summary["rationale"] = {
            "auprc": {
                name: data.by_class(agreement.average_precision(s, data.rationale, data.mask))
                for name, s in scored.items()
            },
            "topk_f1": {
                name: data.by_class(agreement.topk_f1(s, data.rationale, data.mask))
                for name, s in imps.items()
            },
        }
    if data.rationale is not None and data.word_index is not None:
        summary["rationale_words"] = word_rationale_summary(data, imps)
    for part in stage_summaries:
        summary.update(part)
    return strict_json_value(summary)


def word_rationale_summary(data: AnalysisData, imps: dict[str, np.ndarray]) -> dict:
    """Plausibility per word: every importance summed over each word's pieces, against the
    per-word rationale (the same measures as ``summary["rationale"]`` on pieces)."""
    rationale = data.word_rationale()
    per_word = {name: data.word_values(values) for name, values in imps.items()}
    mask = next(iter(per_word.values()))[1] if per_word else data.word_values(data.mask)[1]
    scored = {**{n: v for n, (v, _) in per_word.items()}, "uniform": mask.astype(np.float64)}
    return {
        "rule": "a word's importance is the sum of its pieces'",
        "auprc": {name: data.by_class(agreement.average_precision(s, rationale, mask))
                  for name, s in scored.items()},
        "topk_f1": {name: data.by_class(agreement.topk_f1(v, rationale, mask))
                    for name, (v, _) in per_word.items()},
    }


def load_instances(out_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The ``instances.npz`` arrays and ``instances.json`` of a report folder."""

    loaded = load_stage(out_dir / "instances.npz")
    if loaded is None:

        raise RunError(f"{out_dir}: no analysed instances (instances.npz); run the analysis first")
    return loaded[0], read_json(out_dir / "instances.json")
