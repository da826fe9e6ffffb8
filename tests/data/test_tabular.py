"""Your own data files (CSV, TSV, JSON lines): reading, labels, splits, errors, config and CLI."""

import collections
import json
import math
import re
from pathlib import Path

import pytest

from jaxattn.config import ConfigError, DataConfig, load_config
from jaxattn.data import tabular
from jaxattn.data.dataset import DataError
from jaxattn.data.prepare import prepare
from jaxattn.data.table_rows import Columns, read_table
from jaxattn.data.tabular import load_table

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _raises_at(path, line: int, what: str):
    """Expects a DataError whose message is ``path:line: ...what...``."""
    return pytest.raises(DataError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(what))


def _cfg(train_file, **kw) -> DataConfig:
    return DataConfig(name="file", train_file=str(train_file), **kw)


def _labelled(n_per_class: dict[str, int]) -> str:
    """A CSV with ``n`` rows of each label; the texts say which row they are."""
    rows = ["text,label"]
    for label, n in n_per_class.items():
        rows += [f"{label} example number {i}.,{label}" for i in range(n)]
    return "\n".join(rows) + "\n"


# --- formats -----------------------------------------------------------------------------------


def test_csv_with_quoted_commas_and_inferred_labels(tmp_path):
    path = _write(
        tmp_path / "r.csv",
        'id,text,label\n1,"Good, really good.",pos\n\n2,"He said ""meh"", then left",neg\n'
        '3,"Two\nlines",pos\n4,Fine.,neg\n',
    )
    rows = read_table(path)
    assert [r.line for r in rows] == [2, 4, 5, 7]  # a quoted line break keeps its row's start
    assert rows[0].text == "Good, really good." and rows[1].text == 'He said "meh", then left'
    ds = load_table(_cfg(path, dev_file=str(path), test_file=str(path)))
    assert ds.task == "binary" and ds.label_names == ("neg", "pos")  # sorted
    first = ds.splits["train"][0]
    assert first.tokens == ("good", ",", "really", "good", ".") and first.label == 1
    assert first.uid == "r.csv:2" and first.query is None and first.rationale is None
    assert any("sorted" in note for note in ds.notes)


def test_tsv_keeps_quotes_as_text(tmp_path):
    path = _write(tmp_path / "r.tsv", 'label\ttext\n1\t"quoted" start\n0\tit\'s 2 "bad\n')
    ds = load_table(_cfg(path, dev_file=str(path), test_file=str(path)))
    assert ds.label_names == ("0", "1")
    assert [ex.tokens for ex in ds.splits["train"]] == [
        ('"', "quoted", '"', "start"),
        ("it's", "2", '"', "bad"),
    ]


def test_jsonl_int_and_string_labels_sorted_numerically(tmp_path):
    lines = [
        {"body": "first text", "y": 10},
        {"body": "second text", "y": 2},
        {"body": "third text", "y": 2, "extra": [1]},
        {"body": "fourth text", "y": 1},
    ]
    path = _write(tmp_path / "r.jsonl", "\n".join(map(json.dumps, lines)) + "\n\n")
    # Another file may write the same labels as strings: 2 and "2" are one label.
    strings = _write(tmp_path / "s.jsonl", '{"body": "x", "y": "2"}\n{"body": "y", "y": "10"}\n')
    cfg = _cfg(path, dev_file=str(strings), test_file=str(path), text_column="body",
               label_column="y")
    ds = load_table(cfg)
    assert ds.task == "multiclass" and ds.label_names == ("1", "2", "10")
    assert [ex.label for ex in ds.splits["train"]] == [2, 1, 1, 0]
    assert [ex.label for ex in ds.splits["dev"]] == [1, 2]


@pytest.mark.parametrize(
    "labels, line, what",
    [
        ([0, 1, "01"], 3, "label '01' is a string but the label on line 1 (0) is an integer"),
        (["a", "b", 1], 3, "label 1 is an integer but the label on line 1 ('a') is a string"),
        ([1, "1"], 2, "label '1' is a string"),
    ],
)
def test_jsonl_mixing_integer_and_string_labels_is_an_error(tmp_path, labels, line, what):
    text = "".join(json.dumps({"text": f"text {i}", "label": y}) + "\n" for i, y in enumerate(labels))
    path = _write(tmp_path / "mixed.jsonl", text)
    with _raises_at(path, line, what):
        read_table(path)


def test_one_integer_label_spelled_two_ways_is_an_error(tmp_path):
    # All strings (as every CSV label is), but "1" and "01" would be two classes of one number.
    path = _write(tmp_path / "r.csv", "text,label\na,0\nb,1\nc,01\nd,1\n")
    with _raises_at(path, 4, "label '01' is the number 1, which an earlier line spells '1'"):
        load_table(_cfg(path))
    # Given label names decide: "01" is then simply an unknown label.
    with _raises_at(path, 4, "unknown label '01'"):
        load_table(_cfg(path, label_names=("0", "1")))


def test_json_extension_is_json_lines_and_format_can_be_given(tmp_path):
    text = '{"text": "a b", "label": "x"}\n{"text": "c", "label": "y"}\n'
    assert len(read_table(_write(tmp_path / "r.json", text))) == 2
    assert len(read_table(_write(tmp_path / "r.txt", text), format="jsonl")) == 2
    with pytest.raises(DataError, match=r"r\.txt: cannot tell the format.*data\.format"):
        read_table(tmp_path / "r.txt")


# --- labels, query, rationale ------------------------------------------------------------------


def test_given_label_names_set_the_order_and_unknown_labels_name_the_line(tmp_path):
    path = _write(tmp_path / "r.csv", "text,label\nfine,good\nmeh,bad\nok,good\n")
    cfg = _cfg(path, dev_file=str(path), test_file=str(path), label_names=("good", "bad", "ugly"))
    ds = load_table(cfg)
    assert ds.label_names == ("good", "bad", "ugly") and ds.task == "multiclass"
    assert [ex.label for ex in ds.splits["train"]] == [0, 1, 0]
    with _raises_at(path, 3, "unknown label 'bad'; expected one of good, ugly (data.label_names)"):
        load_table(_cfg(path, label_names=("good", "ugly")))


def test_query_column_makes_an_nli_pair_task(tmp_path):
    rows = [
        {"premise": "A man sleeps.", "hypothesis": "Someone rests.", "label": "entailment"},
        {"premise": "A dog runs.", "hypothesis": "A cat sits.", "label": "contradiction"},
        {"premise": "Kids play.", "hypothesis": "It is noon.", "label": "neutral"},
    ]
    path = _write(tmp_path / "nli.jsonl", "\n".join(map(json.dumps, rows)))
    cfg = _cfg(
        path,
        dev_file=str(path),
        test_file=str(path),
        text_column="premise",
        query_column="hypothesis",
    )
    ds = load_table(cfg)
    assert ds.task == "nli" and ds.is_pair
    assert ds.label_names == ("contradiction", "entailment", "neutral")
    assert ds.splits["train"][0].query == ("someone", "rests", ".")
    prepared = prepare(cfg)
    assert prepared.splits["train"].queries is not None
    assert "rests" in prepared.vocab.stoi  # the vocabulary covers the queries too


def test_rationale_aligned_in_csv_and_jsonl(tmp_path):
    csv_path = _write(
        tmp_path / "r.csv", 'text,label,why\n"A great , fun film",pos,0 1 0 1 0\nDull.,neg,1\n'
    )
    cfg = _cfg(csv_path, dev_file=str(csv_path), test_file=str(csv_path), rationale_column="why")
    ds = load_table(cfg)
    first = ds.splits["train"][0]
    assert first.tokens == ("a", "great", ",", "fun", "film")  # split on whitespace
    assert first.rationale == (0, 1, 0, 1, 0)
    assert ds.splits["train"][1].tokens == ("dull.",)
    assert prepare(cfg).splits["train"].rationales[0].tolist() == [0, 0, 1, 0, 1, 0, 0]

    rows = [{"text": "so bad", "label": 0, "why": [0, 1]}, {"text": "ok", "label": 1, "why": "1"}]
    jsonl = _write(tmp_path / "r.jsonl", "\n".join(map(json.dumps, rows)))
    ds = load_table(_cfg(jsonl, dev_file=str(jsonl), test_file=str(jsonl), rationale_column="why"))
    assert [ex.rationale for ex in ds.splits["train"]] == [(0, 1), (1,)]


def test_rationale_length_mismatch_names_file_and_line(tmp_path):
    path = _write(
        tmp_path / "r.csv", "text,label,why\nvery good,pos,0 1\nnot good at all,neg,1 1\n"
    )
    with _raises_at(path, 3, "the rationale has 2 entries but the text has 4 tokens"):
        load_table(_cfg(path, rationale_column="why"))
    bad = _write(tmp_path / "b.csv", "text,label,why\nvery good,pos,0 2\n")
    with _raises_at(bad, 2, "rationale in 'why' must be 0/1 values, got '2'"):
        read_table(bad, Columns(rationale="why"))


# --- splits ------------------------------------------------------------------------------------


def test_carved_split_is_seeded_deterministic_and_stratified(tmp_path):
    path = _write(tmp_path / "r.csv", _labelled({"a": 60, "b": 40}))
    cfg = _cfg(path, dev_fraction=0.1, test_fraction=0.2, split_seed=3)
    ds = load_table(cfg)
    assert ds.sizes() == {"train": 70, "dev": 10, "test": 20}
    counts = {s: collections.Counter(ex.label for ex in exs) for s, exs in ds.splits.items()}
    assert counts == {"train": {0: 42, 1: 28}, "dev": {0: 6, 1: 4}, "test": {0: 12, 1: 8}}
    uids = {s: [ex.uid for ex in exs] for s, exs in ds.splits.items()}
    assert uids == {s: [ex.uid for ex in exs] for s, exs in load_table(cfg).splits.items()}
    assert len({u for part in uids.values() for u in part}) == 100  # a partition
    other = load_table(_cfg(path, dev_fraction=0.1, test_fraction=0.2, split_seed=4))
    assert [ex.uid for ex in other.splits["test"]] != uids["test"]
    assert any("seed 3" in note for note in ds.notes)


def test_separate_split_files_and_unknown_dev_label(tmp_path):
    train = _write(tmp_path / "train.csv", _labelled({"a": 5, "b": 5}))
    dev = _write(tmp_path / "dev.csv", "text,label\none,a\ntwo,b\n")
    test = _write(tmp_path / "test.tsv", "text\tlabel\nthree\tb\n")
    ds = load_table(_cfg(train, dev_file=str(dev), test_file=str(test)))
    assert ds.sizes() == {"train": 10, "dev": 2, "test": 1}
    assert ds.splits["test"][0].uid == "test.tsv:2"
    assert str(dev) in ds.source and str(test) in ds.source
    # Only the test split carved: train keeps 80% of the training file.
    ds = load_table(_cfg(train, dev_file=str(dev), test_fraction=0.2))
    assert ds.sizes() == {"train": 8, "dev": 2, "test": 2}
    bad_dev = _write(tmp_path / "dev2.csv", "text,label\none,a\ntwo,c\n")
    with _raises_at(bad_dev, 3, "unknown label 'c'; expected one of a, b (the labels of train.csv"):
        load_table(_cfg(train, dev_file=str(bad_dev)))


def test_a_carved_split_left_empty_is_an_error(tmp_path):
    path = _write(tmp_path / "r.csv", "text,label\none,a\ntwo,b\n")
    with pytest.raises(DataError, match=r"r\.csv: the carved dev split is empty"):
        load_table(_cfg(path, dev_fraction=0.1, test_fraction=0.1))


# --- malformed files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, data, line, what",
    [
        ("bytes.csv", b"text,label\ngood,1\nbad \xff here,0\n", 3, "not UTF-8 (byte 0xff"),
        ("empty.csv", b"", 1, "empty file"),
        ("blank.tsv", b"\n  \n", 1, "empty file"),
        ("empty.jsonl", b"\n", 1, "empty file"),
        ("header.csv", b"text,label\n", 2, "no examples after the header"),
        ("column.csv", b"body,label\nx,1\n", 1, "no column 'text' in the header"),
        ("column.tsv", b"text,label\nx,1\n", 1, "one column only"),
        ("fields.csv", b"text,label\ngood, fun,1\n", 2, "expected 2 fields"),
        ("quote.csv", b'text,label\nok,1\n"open,1\nx,0\n', 3, "a quoted field is never closed"),
        ("text.csv", b"text,label\nfine,1\n  ,0\n", 3, "empty text in 'text'"),
        ("br.csv", b"text,label\nfine,1\n<br />,0\n", 3, "empty text after cleaning"),
        ("label.csv", b"text,label\nfine,\n", 2, "empty label"),
        ("key.jsonl", b'{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n', 2, "no key 'text'"),
        ("json.jsonl", b'{"text": "a", "label": 1}\n{"text": "b",\n', 2, "not valid JSON"),
        ("array.json", b'[{"text": "a", "label": 1}]\n', 1, "expected a JSON object"),
        ("float.jsonl", b'{"text": "a", "label": 1.5}\n', 1, "not a string or an integer"),
        ("type.jsonl", b'{"text": 3, "label": 1}\n', 1, "text in 'text' is not a string"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, data, line, what):
    path = tmp_path / name
    path.write_bytes(data)
    with _raises_at(path, line, what):
        tabular.to_examples(read_table(path), path, ("0", "1"))


def test_utf8_bom_is_allowed_and_a_missing_file_is_named(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nfine,1\n")
    assert read_table(path)[0].label == "1"
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.csv'}: file not found")):
        read_table(tmp_path / "nope.csv")


def test_one_label_only_is_an_error(tmp_path):
    path = _write(tmp_path / "r.csv", "text,label\none,a\ntwo,a\n")
    with pytest.raises(DataError, match=r"r\.csv: only one label \('a'\)"):
        load_table(_cfg(path))


# --- prepare, config and command line ----------------------------------------------------------


def test_prepare_uses_the_file_filter_defaults_and_the_train_vocabulary(tmp_path):
    train = _write(tmp_path / "train.csv", "text,label\nshort,a\na longer text here,b\n")
    other = _write(tmp_path / "other.csv", "text,label\nunseen words,a\nx,b\n")
    cfg = _cfg(train, dev_file=str(other), test_file=str(other))
    prepared = prepare(cfg)
    assert prepared.filters == {"min_df": 1, "min_length": 1, "max_length": 0}
    assert "longer" in prepared.vocab.stoi and "unseen" not in prepared.vocab.stoi
    assert prepared.dataset.name == "file:train" and prepared.info()["task"] == "binary"
    cfg = _cfg(train, dev_file=str(other), test_file=str(other), max_length=1, min_df=2)
    prepared = prepare(cfg)
    assert prepared.dataset.sizes() == {"train": 1, "dev": 1, "test": 1}  # one token only
    assert prepared.filters["min_df"] == 2 and len(prepared.vocab) == 4  # specials only


def test_config_paths_resolve_against_the_config_folder_and_overrides_against_cwd(
    tmp_path, monkeypatch
):
    folder = tmp_path / "configs"
    folder.mkdir()
    _write(
        folder / "c.toml",
        '[data]\nname = "file"\ntrain_file = "../data/r.csv"\nlabel_names = ["n", "p"]\n',
    )
    monkeypatch.chdir(tmp_path / "configs")
    cfg = load_config(Path("c.toml"), ["data.dev_file=d.csv"])
    assert cfg.data.train_file == str(tmp_path / "data" / "r.csv")
    assert cfg.data.dev_file == str(tmp_path / "configs" / "d.csv")
    assert cfg.data.label_names == ("n", "p")
    assert load_config(Path("c.toml"), ["data.test_file=/abs/t.csv"]).data.test_file == "/abs/t.csv"


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["data.name=file"], "data.train_file must name a file"),
        (["data.train_file=x.csv"], "data.train_file is only read with data.name = 'file'"),
        (["data.name=file", "data.train_file=x.csv", "data.dev_fraction=1.0"], "[0, 1)"),
        (["data.name=file", "data.train_file=x.csv", "data.test_fraction=nan"], "[0, 1)"),
        (
            [
                "data.name=file",
                "data.train_file=x.csv",
                "data.dev_fraction=0.5",
                "data.test_fraction=0.5",
            ],
            "sum < 1",
        ),
        (["data.name=file", "data.train_file=x.csv", "data.dev_fraction=0"], "no dev split"),
        (["data.name=file", "data.train_file=x.csv", "data.format=xls"], "data.format: 'xls'"),
        (["data.name=file", "data.train_file=x.csv", "data.task=nli"], "needs data.query_column"),
        (
            ["data.name=file", "data.train_file=x.csv", "data.query_column=q", "data.task=binary"],
            "only read by the pair tasks",
        ),
        (["data.name=file", "data.train_file=x.csv", 'data.label_names=["a"]'], "at least 2"),
        (
            ["data.name=file", "data.train_file=x.csv", "data.label_names=[1, 2]"],
            "data.label_names: expected tuple[str, ...]",
        ),
        (
            ["data.name=file", "data.train_file=x.csv", "data.label_column=text"],
            "must name different columns",
        ),
    ],
)
def test_bad_file_configs(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value)


def test_cli_data_file_sets_the_file_source(tmp_path, monkeypatch, capsys):
    import jaxattn.cli.handlers
    from jaxattn.cli import main

    path = _write(tmp_path / "my data.csv", "body,label\nfine,a\nbad,b\n")
    seen = {}

    def fake_train_run(cfg, out, progress=True):
        seen["cfg"] = cfg
        return {"test": {"accuracy": 1.0}, "best_epoch": 1, "selection": "dev"}

    monkeypatch.setattr(jaxattn.cli.handlers, "train_run", fake_train_run)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data-file", "my data.csv", "--out", "x", "--set", "data.text_column=body"]
    assert main(argv) == 0
    data = seen["cfg"].data
    assert (data.name, data.train_file, data.text_column) == ("file", str(path), "body")
    monkeypatch.undo()  # the real train_run: a missing column stops before training
    assert main(["train", "--data-file", str(path), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: no column 'text'" in err and "data.text_column" in err


def test_the_example_config_loads_and_prepares():
    cfg = load_config(ROOT / "configs" / "user_csv_example.toml")
    assert cfg.data.train_file == str(ROOT / "examples" / "data" / "reviews.csv")
    prepared = prepare(cfg.data)
    assert prepared.dataset.sizes() == {"train": 140, "dev": 20, "test": 40}
    assert prepared.dataset.label_names == ("negative", "positive")
    assert math.isclose(
        sum(ex.label for ex in prepared.dataset.splits["train"]) / 140, 0.5
    )  # stratified


# --- long fields, line separators inside JSON strings ------------------------------------------


@pytest.mark.parametrize("name", ["long.csv", "long.tsv", "long.jsonl"])
def test_a_200000_character_text_reads_in_every_format(tmp_path, name):
    text = " ".join(["word"] * 40_000)  # 199,999 characters, past csv's default 131,072 limit
    text = text + "!"
    assert len(text) == 200_000
    rows = {
        "long.csv": f'text,label\n"{text}",1\nshort,0\n',
        "long.tsv": f"text\tlabel\n{text}\t1\nshort\t0\n",
        "long.jsonl": json.dumps({"text": text, "label": "1"}) + '\n{"text": "short", "label": "0"}\n',
    }
    path = _write(tmp_path / name, rows[name])
    read = read_table(path)
    assert [r.text for r in read] == [text, "short"]
    assert [r.line for r in read] == ([1, 2] if name.endswith("jsonl") else [2, 3])
    examples = tabular.to_examples(read, path, ("0", "1"))
    assert len(examples[0].tokens) == 40_001 and examples[0].tokens[-1] == "!"


# JSON allows these raw in a string (control characters below U+0020 it does not);
# str.splitlines() would end a line at each.
@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_raw_line_separators_inside_json_strings_are_text(tmp_path, separator):
    first = f"one{separator}two"
    lines = [{"text": first, "label": "a"}, {"text": "three", "label": "b"}]
    data = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\r\n"
    assert separator in data  # written raw, not as a \u escape
    path = _write(tmp_path / "sep.jsonl", data)
    rows = read_table(path)
    assert [(r.line, r.text, r.label) for r in rows] == [(1, first, "a"), (2, "three", "b")]
    assert tabular.to_examples(rows, path, ("a", "b"))[0].tokens == ("one", "two")


def test_zero_width_only_text_is_an_empty_text(tmp_path):
    path = _write(tmp_path / "zw.csv", "text,label\nfine,1\n\u200b\u200b\ufeff,0\n")
    with _raises_at(path, 3, "empty text in 'text'"):
        read_table(path)
