"""`describe_datasets` and `jaxattn data list` on the fixture data directory."""

import json

from jaxattn.cli import main
from jaxattn.data.catalog import describe_datasets


def test_rows_count_what_training_would_use(fixtures):
    rows = {row["name"]: row for row in describe_datasets(fixtures, ["sst2", "babi1", "ag_news"])}
    sst2 = rows["sst2"]
    assert sst2["available"] and sst2["error"] is None and sst2["task"] == "binary"
    # The protocol's min length 5 drops "too dull ." (3 tokens) and "it is a mess ." (5 stays).
    assert sst2["sizes"] == {"train": 3, "dev": 2, "test": 2}
    assert "sst2/train.tsv" in sst2["source"] and sst2["notes"]
    assert rows["babi1"]["task"] == "qa" and rows["babi1"]["sizes"] == {
        "train": 6,
        "dev": 2,
        "test": 2,
    }
    assert sum(rows["ag_news"]["sizes"].values()) == 6


def test_unavailable_and_unknown_data_sets_are_rows_with_an_error(tmp_path):
    sst2, nope = describe_datasets(tmp_path, ["sst2", "nope"])
    assert not sst2["available"] and sst2["sizes"] is None and sst2["task"] == "binary"
    assert str(tmp_path / "sst2" / "train.tsv") in sst2["error"] and "--data-dir" in sst2["error"]
    assert not nope["available"] and "unknown data set 'nope'" in nope["error"]


def test_cli_prints_a_table_and_json(fixtures, tmp_path, capsys):
    assert main(["data", "list", "sst2", "snli", "--data-dir", str(fixtures)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["name", "task", "train", "dev", "test"]
    sst2 = next(line for line in out if line.startswith("sst2"))
    assert sst2.split()[:5] == ["sst2", "binary", "3", "2", "2"]
    assert any(line.split()[:5] == ["snli", "nli", "15", "3", "3"] for line in out)
    assert main(["data", "list", "sst2", "--data-dir", str(tmp_path)]) == 1  # asked for, missing
    captured = capsys.readouterr()
    assert "NOT AVAILABLE" in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith("jaxattn data list: error: not available: sst2: ")
    assert str(tmp_path / "sst2" / "train.tsv") in line
    assert main(["data", "list", "ag_news", "--json", "--data-dir", str(fixtures)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "ag_news" and row["available"] is True
