"""The tokenizer of a HF folder: WordPiece over vocab.txt as transformers' Python tokenizer,
pairs, words and truncation, and its one-line errors."""

from __future__ import annotations

import collections
import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.models.pretrained import PretrainedError, read_tokenizer, sum_over_words, tokenize
from tests.models.pretrained.tokenizer_cases import (
    HAND_WRITTEN,
    check_against_reference,
    legacy_tokenizer_class,
    sst2_sentences,
)


def small_vocab(sentences):
    """A WordPiece vocabulary that leaves some words whole, splits others and misses some."""
    words = collections.Counter(w for s in sentences for w in s.lower().split())
    chars = sorted({c for s in sentences for c in s.lower() if not c.isspace()})
    return (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + chars
        + ["##" + c for c in chars]
        + [w for w, _ in words.most_common(200) if w not in chars]
        + ["##s", "##ing", "##ed", "##ly", "##er", "un", "##able"]
    )


def vocab_folder(tmp_path, vocab, **settings):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    return tmp_path


@pytest.mark.parametrize("lower", [True, False])
def test_vocab_txt_tokenizer_matches_python_bert_tokenizer(tmp_path, lower):
    sentences = sst2_sentences() + HAND_WRITTEN
    vocab = small_vocab(sentences[: -len(HAND_WRITTEN)])  # the hand-written ones hold unknowns
    folder = vocab_folder(tmp_path / "tok", vocab, do_lower_case=lower)
    reference = legacy_tokenizer_class()(str(folder / "vocab.txt"), do_lower_case=lower)
    check_against_reference(folder, reference, sentences)
    # The vocabulary is small enough that the check covers unknown pieces and split words.
    ids = tokenize(read_tokenizer(folder), sentences).ids
    assert (ids == vocab.index("[UNK]")).sum() > 10
    assert any(t.startswith("##") for t in reference.tokenize(" ".join(sentences[:20])))


def test_pairs_get_token_types_and_running_word_index(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "fun", ".", "bad", "a", "b"]
    folder = vocab_folder(tmp_path, vocab + ["c", "d"])
    batch = tokenize(read_tokenizer(folder), ["good fun .", "a"], ["bad", "b c d"])
    assert batch.ids[0].tolist() == [2, 5, 6, 7, 3, 8, 3]
    sep = 3
    row = batch.ids[0, : batch.valid[0].sum()]
    assert row[0] == 2 and (row == sep).sum() == 2
    assert batch.token_type_ids[0].tolist()[: len(row)] == [0] * 5 + [1] * 2
    assert batch.word_index[1].tolist()[:7] == [-1, 0, -1, 1, 2, 3, -1]
    assert batch.num_words.tolist() == [4, 4]


def test_sum_over_words():
    word_index = jnp.array([[-1, 0, 0, 1, -1, -1], [-1, 0, 1, 1, 2, -1]])
    values = jnp.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(
        sum_over_words(values, word_index, 3), [[3.0, 3.0, 0.0], [7.0, 17.0, 10.0]]
    )


def test_max_length_truncates(tmp_path):
    folder = vocab_folder(tmp_path, small_vocab(sst2_sentences(50)))
    long = " ".join(sst2_sentences(50))
    batch = tokenize(read_tokenizer(folder), [long, "a"], max_length=10)
    assert batch.ids.shape == (2, 10) and batch.ids[0, -1] == 3
    assert tokenize(read_tokenizer(folder), [long]).ids.shape[1] > 100


def test_vocabulary_without_cls_is_refused(tmp_path):
    folder = vocab_folder(tmp_path, ["[PAD]", "[UNK]", "[SEP]", "a"])
    with pytest.raises(PretrainedError, match="cls_token '\\[CLS\\]' is not in the vocabulary"):
        read_tokenizer(folder)
