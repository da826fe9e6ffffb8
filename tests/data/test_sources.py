"""The registry: protocol defaults, and the fallbacks when files are missing."""

import re

import pytest

from jaxattn.data import sources, tfds
from jaxattn.data.dataset import DataError, Dataset, Example
from jaxattn.data.files import MissingDataError


def test_protocol_defaults():
    r = sources.REGISTRY
    assert (r["sst2"].min_df, r["sst2"].min_length) == (1, 5)
    assert (r["imdb"].min_df, r["imdb"].min_length, r["imdb"].max_length) == (10, 6, 399)
    assert (r["20news_sports"].min_df, r["20news_sports"].min_length) == (2, 6)
    assert r["20news_sports"].max_length == 500
    assert (r["ag_news"].min_df, r["snli"].min_df, r["babi3"].min_df) == (5, 3, 1)
    assert (
        r["snli"].task == "nli" and r["babi2"].task == "qa" and r["eraser_movies"].task == "binary"
    )


def test_tfds_is_not_available_here_and_says_how_to_get_it():
    assert not tfds.tfds_available()
    with pytest.raises(MissingDataError, match=r"pip install 'jaxattn\[tfds\]'"):
        tfds.load_tfds("imdb")
    with pytest.raises(MissingDataError, match="no tensorflow-datasets fallback"):
        tfds.load_tfds("babi1")


def test_missing_files_without_tfds_raise_the_files_error(tmp_path):
    with pytest.raises(MissingDataError, match="sst2/train.tsv not found"):
        sources.load_dataset("sst2", tmp_path)


def test_missing_files_with_tfds_use_it_and_say_so(tmp_path, monkeypatch, capsys):
    fake = Dataset("snli", "nli", ("e", "n", "c"), {"train": [Example(("a",), 0, ("b",))]})
    monkeypatch.setattr(tfds, "tfds_available", lambda: True)
    monkeypatch.setattr(tfds, "load_tfds", lambda name: fake if name == "snli" else None)
    ds = sources.load_dataset("snli", tmp_path)
    assert ds.splits == fake.splits
    assert ds.notes[0].startswith("loaded from tensorflow-datasets, as snli: ")
    assert "snli/dev.jsonl not found" in ds.notes[0]
    (line,) = capsys.readouterr().err.splitlines()  # the console says so too, in one line
    assert line.startswith("jaxattn: note: snli: loaded from tensorflow-datasets, as snli: ")


def test_babi_without_its_files_is_an_error_not_generated_data(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "make_babi", lambda *a, **k: pytest.fail("generated data"))
    with pytest.raises(MissingDataError, match="babi2: .*not found") as err:
        sources.load_dataset("babi2", tmp_path)
    assert str(tmp_path / "babi") in str(err.value)
    assert "babi2_generated" in str(err.value)  # how to ask for generated data on purpose
    # A bAbI folder that holds the test file but no train file: the same.
    folder = tmp_path / "babi" / "en-10k"
    folder.mkdir(parents=True)
    (folder / "qa2_two-supporting-facts_test.txt").write_text("1 Mary went home.\n")
    with pytest.raises(MissingDataError, match=r"qa2_\*_train\.txt not found"):
        sources.load_dataset("babi2", tmp_path)


def test_a_named_data_folder_must_exist(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv("JAXATTN_DATA", str(missing))
    with pytest.raises(DataError, match=re.escape(f"$JAXATTN_DATA: data folder {missing} does not exist")):
        sources.resolve_data_dir()
    with pytest.raises(DataError, match=r"\$JAXATTN_DATA: data folder"):
        sources.load_dataset("synthetic")  # not silently read from ../shared/data or elsewhere
    assert sources.data_dir_candidates() == [missing]
    monkeypatch.setenv("JAXATTN_DATA", str(tmp_path))
    assert sources.resolve_data_dir() == tmp_path.resolve()
    with pytest.raises(DataError, match=re.escape(f"--data-dir: data folder {missing} does not exist")):
        sources.resolve_data_dir(missing, origin="--data-dir")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(DataError, match=re.escape(f"data.data_dir: data folder {afile} is not a folder")):
        sources.load_dataset("sst2", afile, origin="data.data_dir")


def test_unknown_name():
    with pytest.raises(Exception, match="unknown data set 'nope'"):
        sources.load_dataset("nope")
