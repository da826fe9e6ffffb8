"""Vocabulary (ids, min-df, digit placeholder) and batching (buckets, masks, padding rows)."""

import numpy as np

from jaxattn.core.protocol import delete_token
from jaxattn.data.batching import (
    EncodedSplit,
    bucket_length,
    encode_split,
    eval_batches,
    keep_tokens,
    make_batch,
    pad_batch,
    training_batches,
)
from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.vocab import EOS, PAD, SOS, UNK, Vocab, clean_tokens, real_token_mask


def test_clean_tokens():
    assert clean_tokens("It's 2 GOOD,<br />really 1999!") == [
        "it's",
        "2",
        "good",
        ",",
        "really",
        "1999",
        "!",
    ]
    assert clean_tokens("a-b  c.d 42", pretokenized=True) == ["a-b", "c.d", "42"]


def test_the_word_vocabulary_reads_digit_runs_as_qqq():
    # J&W's convention: "1999" and "2003" share the word "qqq"; "1930s" is "qqqs".
    vocab = Vocab.build([["in", "1999", "and", "2003"], ["the", "1930s", "\u0661\u0669"]])
    assert "qqq" in vocab.stoi and "qqqs" in vocab.stoi and "1999" not in vocab.stoi
    assert vocab.encode(["1999", "2003", "\u0661\u0669"], add_boundaries=False).tolist() == [
        vocab.stoi["qqq"]
    ] * 3
    assert vocab.encode(["1930s"], add_boundaries=False).tolist() == [vocab.stoi["qqqs"]]


def test_vocab_min_df_and_specials(tmp_path):
    vocab = Vocab.build([["a", "b", "a"], ["a", "c"], ["b"]], min_df=2)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<sos>", "<eos>"]
    assert vocab.itos[4:] == ["a", "b"]  # c has document frequency 1
    ids = vocab.encode(["a", "c"])
    assert ids.tolist() == [SOS, vocab.stoi["a"], UNK, EOS]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == vocab.itos


def test_bucket_length():
    assert [bucket_length(n, (8, 16)) for n in (1, 8, 9, 16, 17, 40)] == [8, 8, 16, 16, 32, 48]


def _dataset(n=50, seed=0):
    rng = np.random.default_rng(seed)
    exs = [
        Example(
            tokens=tuple(f"w{i}" for i in rng.integers(0, 20, size=rng.integers(1, 30))),
            label=int(rng.integers(2)),
            rationale=None,
        )
        for _ in range(n)
    ]
    return Dataset("toy", "binary", ("neg", "pos"), {"train": exs})


def test_batches_cover_split_once_with_bounded_shapes():
    ds = _dataset()
    vocab = Vocab.build([e.tokens for e in ds.splits["train"]])
    split = encode_split(ds.splits["train"], vocab, ds)
    seen, shapes = [], set()
    for batch in training_batches(split, 8, np.random.default_rng(0), buckets=(16, 32)):
        real = batch.index >= 0
        seen += batch.index[real].tolist()
        shapes.add(batch.tokens.shape)
        assert np.all(batch.weights[~real] == 0) and np.all(batch.tokens[~real] == PAD)
        for row, i in zip(batch.tokens[real], batch.index[real]):
            n = len(split.tokens[i])
            np.testing.assert_array_equal(row[:n], split.tokens[i])
            assert np.all(row[n:] == PAD)
    assert sorted(seen) == list(range(len(split)))
    assert shapes <= {(8, 16), (8, 32)}
    assert sorted(i for b in eval_batches(split, 16, (16, 32)) for i in b.index if i >= 0) == list(
        range(50)
    )


def test_mask_excludes_boundaries():
    ds = _dataset(4)
    vocab = Vocab.build([e.tokens for e in ds.splits["train"]])
    split = encode_split(ds.splits["train"], vocab, ds)
    batch = make_batch(split, [0, 1], 3)
    mask = np.asarray(batch.mask)
    for r in range(2):
        assert mask[r].sum() == len(ds.splits["train"][r].tokens)
        assert not mask[r, 0]
    assert not mask[2].any()


def test_the_word_index_follows_every_change_of_the_token_axis():
    # Row 0: [CLS] a b## b## c [SEP]; row 1: [CLS] d [SEP] (made-up ids, 2 words of 3 pieces).
    split = EncodedSplit(
        [np.asarray([SOS, 10, 11, 12, 13, EOS]), np.asarray([SOS, 14, EOS])], np.zeros(2, int),
        word_index=[np.asarray([-1, 0, 1, 1, 2, -1]), np.asarray([-1, 0, -1])])
    batch = make_batch(split, [0, 1], 3, buckets=(8,))
    assert np.asarray(batch.word_index).tolist() == [
        [-1, 0, 1, 1, 2, -1, -1, -1], [-1, 0, -1, -1, -1, -1, -1, -1], [-1] * 8]
    assert np.array_equal(np.asarray(batch.mask), np.asarray(batch.word_index) >= 0)
    assert np.asarray(pad_batch(batch, 10).word_index)[:, 8:].tolist() == [[-1, -1]] * 3
    assert np.asarray(delete_token(batch, 2).word_index)[0].tolist() == [-1, 0, 1, 2, -1, -1,
                                                                          -1]
    keep = np.asarray(batch.valid) & (np.asarray(batch.word_index) != 1)  # word 1 of row 0 out
    kept = keep_tokens(batch, keep)
    assert np.asarray(kept.word_index)[0].tolist() == [-1, 0, 2, -1, -1, -1, -1, -1]
    assert np.asarray(kept.tokens)[0].tolist() == [SOS, 10, 13, EOS, PAD, PAD, PAD, PAD]


def test_text_spelled_like_a_special_token_is_an_ordinary_word(tmp_path):
    texts = [["a", "<pad>", "b"], ["<sos>", "<eos>", "<pad>"], ["<unk>", "a"]]
    vocab = Vocab.build(texts)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<sos>", "<eos>"]
    assert sorted(vocab.itos[4:]) == sorted(["a", "b", "<pad>", "<sos>", "<eos>", "<unk>"])
    ids = vocab.encode(["<pad>", "<sos>", "x", "<eos>", "<unk>"])
    assert ids[0] == SOS and ids[-1] == EOS
    assert ids[3] == UNK  # "x" is not in the vocabulary
    inner = ids[1:-1].tolist()
    assert all(i >= 4 for k, i in enumerate(inner) if k != 2)  # never PAD, UNK, SOS or EOS
    assert vocab.decode(inner) == ["<pad>", "<sos>", "<unk>", "<eos>", "<unk>"]
    # Not in the vocabulary: UNK, like any unknown word, never the special of the same spelling.
    small = Vocab.build([["a"]])
    assert small.encode(["<pad>", "<eos>", "<sos>"], add_boundaries=False).tolist() == [UNK] * 3
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.itos == vocab.itos and again.stoi == vocab.stoi
    # A reserved word keeps its place as a real token in batches (not masked as padding).
    ds = Dataset("toy", "binary", ("n", "p"), {"train": [Example(("a", "<pad>", "b"), 1)]})
    batch = make_batch(encode_split(ds.splits["train"], vocab, ds), [0], batch_size=1)
    assert int(np.asarray(real_token_mask(batch.tokens)).sum()) == 3


def test_an_old_vocabulary_file_still_loads(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('["<pad>", "<unk>", "<sos>", "<eos>", "the", "film"]')
    vocab = Vocab.load(path)
    assert vocab.itos == ["<pad>", "<unk>", "<sos>", "<eos>", "the", "film"]
    assert vocab.encode(["film", "<pad>"]).tolist() == [SOS, 5, UNK, EOS]
