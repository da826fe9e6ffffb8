"""The file parsers and loaders on small fixtures in the real formats, good and malformed."""

import re

import pytest

from jaxattn.data import files
from jaxattn.data.corpora import ag_news, babi, eraser, newsgroups, snli, sst2
from jaxattn.data.dataset import DataError
from jaxattn.data.files import MissingDataError


def _raises_at(path, line: int, what: str):
    """Expects a DataError whose message is ``path:line: ...what...``."""
    return pytest.raises(DataError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(what))


# --- SST-2 -------------------------------------------------------------------------------------


def test_sst2_loads_splits_tokens_and_labels(fixtures):
    ds = sst2.load_sst2(fixtures)
    assert ds.task == "binary" and ds.label_names == ("negative", "positive")
    assert ds.sizes() == {"train": 4, "dev": 2, "test": 2}  # the blank last line of test is no row
    first = ds.splits["train"][0]
    assert first.label == 1 and first.tokens[:3] == ("a", "stirring", ",")
    assert "re-imagining" in first.tokens  # whitespace tokens kept, not re-split
    assert ds.splits["train"][2].tokens[1] == "1930s"  # digits kept; the word vocabulary maps them
    assert [ex.label for ex in ds.splits["train"]] == [1, 0, 1, 0]
    assert first.uid == "sst2/train.tsv:1"
    assert str(fixtures / "sst2" / "test.tsv") in ds.source


@pytest.mark.parametrize(
    "name, line, what",
    [
        ("sst2_columns.tsv", 2, "expected 2 tab-separated columns"),
        ("sst2_label.tsv", 3, "unknown label '2'"),
        ("sst2_empty.tsv", 2, "empty text"),
    ],
)
def test_sst2_malformed_lines_name_file_and_line(bad, name, line, what):
    with _raises_at(bad / name, line, what):
        sst2.parse_sst2(bad / name)


def test_missing_files_name_the_path_and_how_to_point_to_the_data(tmp_path):
    with pytest.raises(
        MissingDataError, match=re.escape(str(tmp_path / "sst2" / "train.tsv"))
    ) as err:
        sst2.load_sst2(tmp_path)
    assert "--data-dir" in str(err.value) and "JAXATTN_DATA" in str(err.value)
    with pytest.raises(MissingDataError, match="no data directory found"):
        snli.load_snli(None)


# --- 20 Newsgroups -----------------------------------------------------------------------------

POST = """From: fan@example.edu
Subject: Re: Orioles

In article <1@example.edu> other@example.edu writes:
> They will win.
|> Quoted with a bar.
I disagree, the bullpen is weak.
Said the pitcher: not so.

--
Fan, fan@example.edu"""


def test_newsgroup_stripping_removes_header_quotes_and_signature():
    assert newsgroups.strip_newsgroup_header(POST).startswith("In article")
    stripped = newsgroups.strip_newsgroup(POST).strip()
    assert stripped == "I disagree, the bullpen is weak.\nSaid the pitcher: not so."
    # A post without a blank line keeps its last line (no signature to find).
    assert newsgroups.strip_newsgroup_footer("one\ntwo") == "one\ntwo"
    assert newsgroups.strip_newsgroup_footer("body\n-----\nsig") == "body"


def test_20news_pools_strips_drops_empty_and_resplits(fixtures):
    ds = newsgroups.load_20news_sports(fixtures)
    sizes = ds.sizes()
    # 10 posts, one all quotes: 9 kept (4 baseball, 5 hockey), split 80/20 then 80/20 within
    # each class, rounded per class: baseball 2/1/1, hockey 3/1/1.
    assert sizes == {"train": 5, "dev": 2, "test": 2}
    assert any("1 posts empty after stripping were dropped" == n for n in ds.notes)
    uids = [ex.uid for split in ds.splits.values() for ex in split]
    assert len(set(uids)) == 9 and "rec.sport.baseball/104" not in uids  # the empty post
    by_uid = {ex.uid: ex for split in ds.splits.values() for ex in split}
    first = by_uid["rec.sport.baseball/100"].tokens
    assert "orioles" in first and "writes" not in first and "fan@example" not in " ".join(first)
    assert "subject" not in by_uid["rec.sport.hockey/201"].tokens
    assert "signature" not in by_uid["rec.sport.hockey/201"].tokens
    for split in ds.splits.values():
        assert {ex.label for ex in split} == {0, 1}  # stratified: both classes everywhere


def test_20news_unknown_label(bad):
    with _raises_at(bad / "newsgroups_label.jsonl", 2, "unknown label 2"):
        newsgroups.parse_newsgroups(bad / "newsgroups_label.jsonl")


# --- AG News -----------------------------------------------------------------------------------


def test_ag_news_keeps_world_and_business_descriptions(fixtures):
    examples = ag_news.parse_ag_news(fixtures / "ag_news" / "test.csv")
    assert [ex.label for ex in examples] == [1, 0, 0, 1, 0, 1]  # classes 3,1,1,3,1,3 of 8 rows
    # Row 3 spans lines 3-4 (a newline inside quotes); the next row starts on line 5.
    assert [ex.uid.split(":")[1] for ex in examples] == ["1", "3", "6", "7", "8", "9"]
    assert examples[1].tokens[-3:] == ("this", "week", ".")
    assert "federal" in examples[0].tokens and "fears" not in examples[0].tokens  # no title
    ds = ag_news.load_ag_news(fixtures)
    assert sum(ds.sizes().values()) == 6 and ds.label_names == ("world", "business")
    assert any("70/10/20" in note for note in ds.notes)


def test_ag_news_malformed(bad):
    with _raises_at(bad / "ag_news_columns.csv", 4, "expected 3 columns"):
        ag_news.parse_ag_news(bad / "ag_news_columns.csv")
    with _raises_at(bad / "ag_news_label.csv", 2, "unknown label '7'"):
        ag_news.parse_ag_news(bad / "ag_news_label.csv")


# --- SNLI --------------------------------------------------------------------------------------


def test_snli_pairs_labels_and_carved_train(fixtures):
    examples, skipped = snli.parse_snli(fixtures / "snli" / "dev.jsonl")
    assert skipped == 1 and len(examples) == 18
    assert examples[0].tokens[:2] == ("two", "women") and examples[0].query[-1] == "."
    assert [ex.label for ex in examples[:3]] == [1, 0, 2]  # neutral, entailment, contradiction
    ds = snli.load_snli(fixtures)
    assert ds.task == "nli" and ds.is_pair
    assert ds.sizes() == {"train": 15, "dev": 3, "test": 3}  # 90/10 of 6 per class: 5/1
    assert {ex.uid for ex in ds.splits["train"] + ds.splits["dev"]} == {ex.uid for ex in examples}
    assert any("no SNLI training set" in n for n in ds.notes)
    assert any("dev 1, test 0" in n for n in ds.notes)


def test_snli_malformed(bad):
    with _raises_at(bad / "snli_json.jsonl", 2, "not valid JSON"):
        snli.parse_snli(bad / "snli_json.jsonl")
    with _raises_at(bad / "snli_label.jsonl", 1, "unknown label 'maybe'"):
        snli.parse_snli(bad / "snli_label.jsonl")


# --- bAbI --------------------------------------------------------------------------------------


def test_babi_passage_query_answer_and_supporting_facts(fixtures):
    path = fixtures / "babi" / "en-10k" / "qa1_single-supporting-fact_train.txt"
    stories = babi.parse_babi_lines(path.read_text().splitlines(), "qa1_train")
    assert [len(s) for s in stories] == [2, 2, 2, 2]
    q = stories[0][1]  # "Where is Daniel?" after 4 sentences
    assert q.query == ("where", "is", "daniel", "?") and q.answer == "hallway"
    assert q.passage[:6] == ("mary", "moved", "to", "the", "bathroom", ".")
    assert len(q.passage) == 6 + 6 + 7 + 6  # sentences 1, 2, 4, 5; the question line is no sentence
    marked = [tok for tok, r in zip(q.passage, q.rationale) if r]
    assert marked == ["daniel", "went", "back", "to", "the", "hallway", "."]  # sentence 4
    assert q.uid == "qa1_train:6"


def test_babi_dataset_labels_dev_and_1k_fallback_note(fixtures):
    ds = babi.load_babi(fixtures, 1)
    assert ds.task == "qa" and ds.label_names == ("bathroom", "garden", "hallway", "kitchen")
    assert ds.sizes() == {"train": 6, "dev": 2, "test": 2}  # 15% of 4 stories: 1 story
    ex = ds.splits["test"][1]
    assert ds.label_names[ex.label] == "bathroom" and ex.query[-2] == "mary"
    assert len(ex.rationale) == len(ex.tokens)
    ds3 = babi.load_babi(fixtures, 3)
    assert "babi/en-10k has no train file for task 3: using the 1k one" in ds3.notes
    assert "babi/en/qa3" in ds3.source and "babi/en-10k/qa3" in ds3.source
    ex = ds3.splits["test"][0]
    marked = " ".join(t for t, r in zip(ex.tokens, ex.rationale) if r)  # sentences 1, 3, 4
    assert (
        marked
        == "sandra went to the garden . sandra moved to the kitchen . sandra dropped the football ."
    )
    with pytest.raises(MissingDataError, match=r"qa2_\*_train\.txt not found"):
        babi.load_babi(fixtures, 2)


def test_babi_answer_unseen_in_training_is_an_error(fixtures):
    train = babi.parse_babi_lines(
        ["1 Mary went to the garden.", "2 Where is Mary? \tgarden\t1"], "t"
    )
    test = babi.parse_babi_lines(["1 Mary went to the moon.", "2 Where is Mary? \tmoon\t1"], "u")
    with pytest.raises(DataError, match="u:2: answer 'moon' never occurs"):
        babi.babi_dataset("x", train, test, "here")


@pytest.mark.parametrize(
    "name, line, what",
    [
        ("babi_nonumber.txt", 3, "expected 'NUMBER text'"),
        ("babi_support.txt", 4, "supporting facts [2] are not earlier sentences"),
        ("babi_numbering.txt", 3, "line number 4 does not follow 2"),
    ],
)
def test_babi_malformed(bad, name, line, what):
    with _raises_at(name, line, what):
        babi.parse_babi_lines((bad / name).read_text().splitlines(), name)


# --- ERASER movies -----------------------------------------------------------------------------


def test_eraser_tokens_labels_and_rationales_keep_offsets(fixtures):
    ds = eraser.load_eraser_movies(fixtures)
    assert ds.sizes() == {"train": 2, "dev": 1, "test": 1}
    neg, pos = ds.splits["train"]
    assert (neg.label, pos.label) == (0, 1)
    raw = (fixtures / "eraser_movies" / "docs" / "negR_000.txt").read_text().split()
    assert len(neg.tokens) == len(raw) == len(neg.rationale) == 24
    assert neg.tokens[11] == "1999"
    assert [t for t, r in zip(neg.tokens, neg.rationale) if r] == [
        "is", "a", "mess", "is", "dreadful", ".",
    ]  # fmt: skip
    assert pos.tokens[3] == "wonderful" and pos.rationale[3:6] == (1, 1, 1)
    test = ds.splits["test"][0]  # one evidence group of three spans, one of them empty
    assert [t for t, r in zip(test.tokens, test.rationale) if r] == ["best", "truly", "great"]
    assert test.uid == "eraser_movies/posR_001.txt"


def test_eraser_malformed(fixtures, bad):
    docs = fixtures / "eraser_movies" / "docs"
    with _raises_at(bad / "eraser_span.jsonl", 1, "evidence span [3, 40) outside the 6 tokens"):
        eraser.parse_eraser(bad / "eraser_span.jsonl", docs)
    with _raises_at(bad / "eraser_label.jsonl", 2, "unknown label 'MEH'"):
        eraser.parse_eraser(bad / "eraser_label.jsonl", docs)
    with _raises_at(bad / "eraser_label.jsonl", 1, "document"):
        eraser.parse_eraser(bad / "eraser_label.jsonl", bad)  # no docs there


def test_ag_news_escapes_are_undone():
    from jaxattn.data.corpora.ag_news import _unescape_ag_news

    assert _unescape_ag_news("Inc. &lt;TXN.N&gt; said it#39;s \\$5\\bn") == "Inc. <TXN.N> said it's  $5 bn"


def test_json_lines_split_at_newlines_only_and_csv_fields_may_be_long(tmp_path):
    path = tmp_path / "sep.jsonl"
    path.write_text('{"text": "a\u2028b\x85c"}\r\n\n{"text": "d"}\n', encoding="utf-8")
    assert list(files.json_lines(path)) == [(1, {"text": "a\u2028b\x85c"}), (3, {"text": "d"})]
    long = "x" * 200_000
    (tmp_path / "long.csv").write_text(f'1,"{long}",y\n', encoding="utf-8")
    assert list(files.csv_rows(tmp_path / "long.csv")) == [(1, ["1", long, "y"])]
