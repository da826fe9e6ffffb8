"""Published figures of Jain & Wallace (NAACL 2019) to set beside ours, as data.

``TABLE2[dataset][cls][measure][encoder] = (mean, std)``: Kendall tau between attention and
gradient (``grad``) or leave-one-out (``loo``) importance, by predicted class (``"all"`` where the
paper pooled the classes), for trained models with additive attention. Data sets are keyed by
their jaxattn registry names; encoders by jaxattn encoder names.
"""

from __future__ import annotations

ENCODERS = ("bilstm", "average", "cnn")

# Printed names in the paper's table.
DATASET_TITLES = {
    "sst2": "SST",
    "imdb": "IMDB",
    "20news_sports": "20News",
    "ag_news": "AG News",
    "babi1": "bAbI 1",
    "babi2": "bAbI 2",
    "babi3": "bAbI 3",
    "snli": "SNLI",
}

# The setting the published numbers were obtained in, in jaxattn's terms (config values), so a
# run that differs can be flagged. Embeddings were 300-d pretrained vectors, fine-tuned (fastText;
# the published preprocessing used GloVe 840B for SNLI and AG News), which jaxattn does not ship;
# bAbI used random 50-d embeddings.
PUBLISHED_SETTING = {
    "embeddings": "fasttext",
    "selection": "test",
    "attention": "additive",
    "gradient": "below attention (attention held fixed)",
}
RANDOM_EMBEDDING_DATASETS = ("babi1", "babi2", "babi3")


def published_setting_for(dataset: str | None) -> dict[str, str]:
    """:data:`PUBLISHED_SETTING` with the embeddings J&W used for ``dataset``."""
    if dataset in RANDOM_EMBEDDING_DATASETS:
        return {**PUBLISHED_SETTING, "embeddings": "random"}
    return dict(PUBLISHED_SETTING)


_ROWS = """
sst2 0 .40 .21 .69 .15 .45 .19 .34 .20 .67 .14 .36 .18
sst2 1 .38 .19 .69 .14 .50 .17 .33 .19 .69 .13 .38 .17
imdb 0 .37 .07 .65 .05 .34 .05 .30 .07 .54 .08 .26 .05
imdb 1 .37 .08 .66 .05 .40 .06 .31 .07 .63 .06 .28 .06
20news_sports 0 .08 .15 .65 .09 .43 .17 .05 .15 .78 .11 .41 .16
20news_sports 1 .13 .16 .66 .09 .31 .12 .14 .14 .77 .11 .31 .13
ag_news 0 .42 .11 .77 .08 .40 .11 .35 .13 .44 .14 .32 .12
ag_news 1 .35 .13 .75 .07 .37 .11 .32 .13 .55 .13 .28 .12
babi1 all .23 .19 .66 .17 .13 .13 .23 .18 .58 .15 .03 .10
babi2 all .17 .12 .84 .09 .05 .07 .11 .13 .93 .03 .14 .07
babi3 all .30 .11 .76 .12 .23 .06 .31 .11 .82 .07 .17 .06
snli 0 .36 .22 .54 .20 .27 .24 .44 .18 .57 .20 .28 .23
snli 1 .42 .19 .59 .18 .29 .23 .43 .17 .60 .18 .28 .22
snli 2 .40 .20 .53 .19 .33 .24 .44 .17 .56 .19 .30 .23
"""


def _parse(rows: str) -> dict:
    table: dict = {}
    for line in rows.strip().splitlines():
        dataset, cls, *numbers = line.split()
        values = [float(x) for x in numbers]
        pairs = list(zip(values[0::2], values[1::2]))  # grad x 3 encoders, then loo x 3
        table.setdefault(dataset, {})[cls] = {
            "grad": dict(zip(ENCODERS, pairs[:3])),
            "loo": dict(zip(ENCODERS, pairs[3:])),
        }
    return table


TABLE2: dict[str, dict[str, dict[str, dict[str, tuple[float, float]]]]] = _parse(_ROWS)

# The published code's class order (its class indices key TABLE2). SNLI's answers were sorted
# alphabetically, unlike jaxattn's (entailment, neutral, contradiction): match classes by name.
CLASS_NAMES = {
    "sst2": ("negative", "positive"),
    "imdb": ("negative", "positive"),
    "20news_sports": ("baseball", "hockey"),
    "ag_news": ("world", "business"),
    "snli": ("contradiction", "entailment", "neutral"),
}


def published_class(dataset: str, name: str) -> str | None:
    """The TABLE2 class key of the class called ``name`` in ``dataset``, or None."""
    names = CLASS_NAMES.get(dataset, ())
    return str(names.index(name)) if name in names else None


# Test performance of the BiLSTM + additive attention model (F1 of the positive class for the
# binary tasks, accuracy otherwise), as (low, high) where the paper gives a range.
PERFORMANCE = {
    "sst2": ("f1", (0.78, 0.81)),
    "imdb": ("f1", (0.88, 0.90)),
    "20news_sports": ("f1", (0.92, 0.94)),
    "ag_news": ("f1", (0.96, 0.96)),
    "snli": ("accuracy", (0.78, 0.78)),
    "babi1": ("accuracy", (1.00, 1.00)),
    "babi2": ("accuracy", (0.48, 0.65)),
    "babi3": ("accuracy", (0.62, 0.64)),
}


def published_tau(dataset: str, cls: str, measure: str, encoder: str) -> tuple[float, float] | None:
    """(mean, std) of the published Kendall tau, or None where the paper has no such cell."""
    return TABLE2.get(dataset, {}).get(cls, {}).get(measure, {}).get(encoder)


# Published comparison points for the summaries of self-attention (the ``summaries`` stage). No
# figure is quoted: each entry states the finding and how far it is comparable with ours.
SELF_ATTENTION_PUBLISHED = (
    {
        "source": "Abnar & Zuidema 2020",
        "keys": ("sa_raw", "sa_rollout", "sa_flow"),
        "short": "rollout and flow correlate better than raw attention with blank-out and input "
                 "gradients; a small Transformer on subject-verb agreement, so only the "
                 "direction compares",
        "summaries": "raw attention, rollout, flow",
        "finding": "Spearman correlation with blank-out (ablation) and input-gradient "
                   "importance is higher for attention rollout and attention flow than for raw "
                   "attention.",
        "comparability": "a small Transformer trained on subject-verb agreement, the importance "
                         "of the input tokens for the verb's number; ours is a sentence "
                         "classifier read at its query row, with Kendall tau against gradient "
                         "and leave-one-out: the direction (rollout / flow above raw) is what "
                         "compares, not the values.",
    },
    {
        "source": "Chefer, Gur & Wolf 2021",
        "keys": ("sa_chefer",),
        "short": "on ERASER Movie Reviews (BERT) their relevance beats rollout and raw attention "
                 "in token F1 against the rationale: plausibility, with their LRP-based rule, so "
                 "compare our AUPRC there in direction only",
        "summaries": "gradient-weighted relevance, rollout, raw attention",
        "finding": "on the ERASER Movie Reviews data with BERT, their relevance propagation "
                   "agrees better with the human rationales (token F1 of the top tokens) than "
                   "rollout and raw attention.",
        "comparability": "a plausibility measure (agreement with the rationale), not ERASER "
                         "comprehensiveness / sufficiency; their Movie Reviews method is the "
                         "LRP-based propagation (CVPR 2021), while the gradient-weighted rule "
                         "computed here is their generic one (ICCV 2021): compare our AUPRC "
                         "column on Movie Reviews in direction only.",
    },
    {
        "source": "Neely et al. 2022",
        "keys": ("sa_raw",),
        "short": "attention and attribution methods agree little in rank on DistilBERT; "
                 "agreement is not faithfulness, so the ERASER columns decide",
        "summaries": "attention vs attribution methods",
        "finding": "on DistilBERT (and an LSTM) the rank agreement between attention-based "
                   "explanations and attribution methods (e.g. integrated gradients, LIME, "
                   "SHAP) is low, and agreement between explainers is argued not to certify "
                   "faithfulness.",
        "comparability": "their attention is the model's own weights over several data sets; "
                         "our tau columns measure the same kind of agreement per word, so low "
                         "tau here is the published pattern, and the ERASER columns, not tau, "
                         "say which summary is faithful.",
    },
)
