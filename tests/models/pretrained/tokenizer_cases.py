"""Sentences and checks shared by the tokenizer tests."""

import pytest

from jaxattn.data.sources import data_dir_candidates
from jaxattn.models.pretrained import read_tokenizer, tokenize

HAND_WRITTEN = [
    "Café déjà vu: a naïve résumé of the Ångström era.",
    "Straße, façade, coöperate — ÉCOLE normale!",
    "I don't think it's (really) worth $9.99... or is it?!",
    "xyzzyplugh frobnicated the quuxes",
    "我喜欢这部电影 and 映画",
    "tabs\tand\nnewlines   and  spaces",
    "zero\u200bwidth and soft\u00adhyphen and control\x07char",
    "a" * 120 + " supercalifragilisticexpialidocious",
    "U.S.A. vs. the U.K.: 3-2, 1,000,000 fans; 100% sure",
    "emoji 🙂 and symbols © ® ™ § ¶",
    "ALL CAPS Mixed Case lower",
    "",
]


def sst2_sentences(n=300):
    """The first ``n`` SST-2 dev sentences of the data folder (skips when there is none)."""
    files = [d / "sst2" / "dev.tsv" for d in data_dir_candidates()]
    found = [f for f in files if f.is_file()]
    if not found:
        pytest.skip(f"no SST-2 dev.tsv in {', '.join(map(str, files))}")
    lines = found[0].read_text(encoding="utf-8").splitlines()[:n]
    return [line.split("\t", 1)[1] for line in lines]


def legacy_tokenizer_class():
    transformers = pytest.importorskip("transformers")
    # transformers 5 keeps the pure-Python tokenizer as BertTokenizerLegacy; in 4.x it is
    # BertTokenizer itself.
    return getattr(transformers, "BertTokenizerLegacy", None) or transformers.BertTokenizer


def expected_word_index(reference, text):
    """Word of each piece from the reference's own basic + wordpiece split of ``text``."""
    out = []
    for i, word in enumerate(reference.basic_tokenizer.tokenize(text)):
        out += [i] * len(reference.wordpiece_tokenizer.tokenize(word))
    return out


def check_against_reference(folder, reference, sentences):
    tokenizer = read_tokenizer(folder)
    batch = tokenize(tokenizer, sentences)
    for b, text in enumerate(sentences):
        expected = reference.encode(text, add_special_tokens=True)
        n = int(batch.valid[b].sum())
        assert batch.ids[b, :n].tolist() == expected, text
        assert (batch.ids[b, n:] == 0).all() and not batch.mask[b, [0, n - 1]].any()
        assert batch.word_index[b, 1 : n - 1].tolist() == expected_word_index(reference, text), text
        assert (batch.word_index[b, ~batch.mask[b]] == -1).all()
