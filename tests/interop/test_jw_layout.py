"""The J&W layout without torch: params -> state dicts -> params is exact, the vocabulary files
read in id order (hostile pickles: test_vocab_pickles.py)."""

import json

import jax
import numpy as np
import pytest

from jaxattn.interop.jw_layout import CheckpointError, from_params, sizes, to_params
from jaxattn.interop.torch_runs import read_vocab
from tests.helpers import toy_model


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average"])
@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_params_to_state_dicts_and_back_is_exact(encoder, attention):
    _, params, _ = toy_model("binary", encoder, attention)
    enc, dec = from_params(params, encoder)
    found = sizes(enc, dec)
    assert (found["encoder"], found["attention"], found["num_outputs"]) == (encoder, attention, 1)
    back = to_params(enc, dec)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    assert len(flat) == len(jax.tree_util.tree_leaves(back))
    for path, leaf in flat:
        node = back
        for key in path:
            node = node[key.key]
        np.testing.assert_array_equal(np.asarray(leaf), node)


def test_pair_models_have_no_jw_layout():
    _, params, _ = toy_model("nli", "bilstm", "additive")
    with pytest.raises(CheckpointError, match="pair models"):
        from_params(params, "bilstm")


def test_vocabulary_files(tmp_path):
    words = ["<0>", "<UNK>", "<SOS>", "<EOS>", "good", "bad"]
    (tmp_path / "list.json").write_text(json.dumps(words))
    (tmp_path / "map.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    for name in ("list.json", "map.json", "vocab.txt"):
        assert read_vocab(tmp_path / name) == words
    (tmp_path / "gap.json").write_text(json.dumps({"<0>": 0, "a": 2}))
    with pytest.raises(CheckpointError, match="gap.json: ids are not 0..1"):
        read_vocab(tmp_path / "gap.json")
    (tmp_path / "twice.txt").write_text("\n".join([*words, "good"]))
    with pytest.raises(CheckpointError, match="'good' appears twice"):
        read_vocab(tmp_path / "twice.txt")


@pytest.mark.parametrize(
    "data",
    [
        "\r\n".join(["<0>", "<UNK>", "<SOS>", "<EOS>", "café", "bad"]) + "\r\n",
        "\ufeff" + "\r\n".join(["<0>", "<UNK>", "<SOS>", "<EOS>", "café", "bad"]) + "\r\n\r\n",
        "\ufeff" + "\n".join(["<0>", "<UNK>", "<SOS>", "<EOS>", "café", "bad"]),
    ],
)
def test_text_vocabulary_with_crlf_lines_and_a_byte_order_mark(tmp_path, data):
    path = tmp_path / "vocab.txt"
    path.write_bytes(data.encode("utf-8"))
    assert read_vocab(path) == ["<0>", "<UNK>", "<SOS>", "<EOS>", "café", "bad"]


def test_text_vocabulary_lines_split_at_newlines_only(tmp_path):
    # U+2028 and U+0085 are characters of a word here, not line ends; bytes not UTF-8 are named.
    words = ["<0>", "<UNK>", "<SOS>", "<EOS>", "a\u2028b", "c\x85d", "e\rf"]
    (tmp_path / "odd.txt").write_bytes("\n".join(words).encode("utf-8"))
    assert read_vocab(tmp_path / "odd.txt") == words
    (tmp_path / "latin1.txt").write_bytes(b"<0>\n<UNK>\n<SOS>\n<EOS>\ncaf\xe9\n")
    with pytest.raises(CheckpointError, match=r"latin1\.txt: not UTF-8 text \(byte 25\)"):
        read_vocab(tmp_path / "latin1.txt")
