"""SST + distractors: deterministic, the SST tokens are the rationale, distractors from AG News."""

from jaxattn.data.corpora.sst2_distractors import DISTRACTORS, load_sst2_distractors
from jaxattn.data.sources import REGISTRY

SST = {
    "train": ["1\ta truly lovely little film .", "0\tdull , flat and far too long", "1\tok"],
    "dev": ["0\tnothing here works at all ."],
    "test": ["1\tthe cast is great fun to watch"],
}
AG = [
    '"2","Sox win","The red sox beat the yankees in extra innings."',
    '"4","New chip","A new chip doubles battery life of phones."',
    '"1","World","World news never appears as a distractor."',
    '"3","Biz","Business news never appears either."',
]


def _data_dir(tmp_path):
    (tmp_path / "sst2").mkdir()
    for split, lines in SST.items():
        (tmp_path / "sst2" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_text("\n".join(AG) + "\n")
    return tmp_path


def test_each_sst_sentence_sits_among_distractors_and_is_the_rationale(tmp_path):
    data = load_sst2_distractors(_data_dir(tmp_path))
    train = data.splits["train"]
    assert len(train) == 2  # "ok" is shorter than 5 tokens
    sst_texts = [line.split("\t")[1].split() for line in SST["train"][:2]]
    for ex, text, label in zip(train, sst_texts, (1, 0)):
        assert ex.label == label
        marked = [t for t, r in zip(ex.tokens, ex.rationale) if r]
        assert marked == text  # exactly the SST sentence, contiguous, in order
        rest = " ".join(t for t, r in zip(ex.tokens, ex.rationale) if not r)
        assert "world" not in rest and "business" not in rest
        assert len(ex.tokens) > len(text) + DISTRACTORS * 5
    assert REGISTRY["sst2_distractors"].task == "binary"


def test_the_construction_is_deterministic(tmp_path):
    root = _data_dir(tmp_path)
    first, second = load_sst2_distractors(root), load_sst2_distractors(root)
    assert first.splits == second.splits
