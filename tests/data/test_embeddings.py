"""Pretrained vectors: a damaged GloVe file stops with one line naming it."""

import re

import numpy as np
import pandas as pd
import pytest

from jaxattn.data import embeddings
from jaxattn.data.dataset import DataError
from jaxattn.data.vocab import PAD, Vocab

WORDS = ["the", "film", "good", "bad"]


@pytest.fixture
def glove(tmp_path, monkeypatch):
    """A 4-word, 3-d stand-in for the GloVe package's two files."""
    matrix, index = tmp_path / "emb.npy", tmp_path / "index.parquet"
    np.save(matrix, np.arange(12, dtype=np.float32).reshape(4, 3))
    pd.DataFrame({"word": WORDS}).to_parquet(index)
    monkeypatch.setattr(embeddings, "_glove_files", lambda: (matrix, index))
    return matrix, index


def test_a_good_table(glove):
    vocab = Vocab(["film", "unseen"])
    table, coverage = embeddings.pretrained_table(vocab, "glove-6b-50d")
    assert table.shape == (6, 3) and coverage == 0.5
    np.testing.assert_array_equal(table[4], [3, 4, 5])
    assert not table[PAD].any()


def _damage(path, how):
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "empty": b"", "garbage": b"x" * 50}[how])


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage"])
@pytest.mark.parametrize("which", [0, 1], ids=["matrix", "index"])
def test_a_damaged_file_is_named(glove, which, how):
    path = glove[which]
    _damage(path, how)
    with pytest.raises(DataError, match=re.escape(f"{path}: ")) as err:
        embeddings.pretrained_table(Vocab(["film"]), "glove-6b-50d")
    assert "reinstall" in str(err.value) and "\n" not in str(err.value)


def test_a_missing_file_or_wrong_shape_or_nan_is_named(glove):
    matrix, index = glove
    np.save(matrix, np.zeros((3, 3), np.float32))
    with pytest.raises(DataError, match=re.escape(f"{matrix}: a float32 matrix of shape (3, 3)")):
        embeddings.load_glove_6b_50d()
    np.save(matrix, np.full((4, 3), np.nan, np.float32))
    with pytest.raises(DataError, match=re.escape(f"{matrix}: holds values that are not finite")):
        embeddings.pretrained_table(Vocab(["film"]), "glove-6b-50d")
    matrix.unlink()
    with pytest.raises(DataError, match=re.escape(f"{matrix}: GloVe matrix not found")):
        embeddings.load_glove_6b_50d()


def test_check_pretrained_opens_the_files_without_reading_the_matrix(glove):
    embeddings.check_pretrained("random")
    embeddings.check_pretrained("glove-6b-50d")
    _damage(glove[0], "truncated")
    with pytest.raises(DataError, match=re.escape(f"{glove[0]}: not a readable GloVe matrix")):
        embeddings.check_pretrained("glove-6b-50d")
