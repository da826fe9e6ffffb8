"""A family of generated data files (CSV, TSV, JSON lines; random Unicode texts, integer and string
labels, empty fields, missing columns, byte-order marks, CRLF): reading one either gives exactly
what was written or raises one line of :class:`DataError` naming the file, never another error."""

import csv
import io
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jaxattn.config import DataConfig
from jaxattn.data.dataset import DataError
from jaxattn.data.tabular import _INTEGER, load_table
from jaxattn.data.vocab import clean_tokens

_COUNTER = itertools.count()

# Texts: any Unicode (no surrogates: a file is UTF-8), often with the characters that break
# readers: line and paragraph separators, tabs, quotes, commas, zero-width spaces, marks.
_TRICKY = "\u2028\u2029\x85\u2028\u2029\x85\t\r\n\",'\u200b\ufeff\u0301 é中👍🏽"
texts = st.one_of(
    st.text(min_size=1, max_size=30),
    st.text(st.sampled_from(_TRICKY + "ab1 "), min_size=1, max_size=12),
    st.sampled_from(["good film", "Crème brûlée", "Привет мир", "我喜欢", "a\u200bb"]),
).filter(clean_tokens)
empty_texts = st.sampled_from(["", " ", "\u200b", "\u200b\ufeff\u2060", "<br />"])
# One kind of label per file; a mangled file now and then has an odd one (mixed type, empty, "01").
_LABEL_KINDS = {
    "integers": [0, 1, 2],
    "strings": ["pos", "neg", "meh"],
    "digits": ["0", "1", "2"],
}
_ODD_LABELS = [-1, 3, "01", " pos ", "", "\u200b", "a,b", "x\ty", "ünï", "1"]


@st.composite
def records(draw):
    """1-6 rows of (text, label, whether the row has its label); half the files are mangled:
    some rows with an empty text, an odd label or no label."""
    kind = st.sampled_from(_LABEL_KINDS[draw(st.sampled_from(sorted(_LABEL_KINDS)))])
    if draw(st.booleans()):
        row = st.tuples(texts, kind, st.just(True))
    else:
        row = st.tuples(
            st.one_of(texts, texts, empty_texts),
            st.one_of(kind, kind, st.sampled_from(_ODD_LABELS)),
            st.sampled_from([True, True, True, False]),
        )
    return draw(st.lists(row, min_size=1, max_size=6))



@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data-family")


def _write(
    folder: Path, fmt: str, rows, *, bom: bool, crlf: bool, drop_label_column: bool, escape: bool
) -> Path:
    """The file ``rows`` (text, label, keep-label) make in ``fmt``; a False keep-label leaves the
    label out of that row (an empty field in CSV/TSV, no key in JSON lines). ``escape`` writes
    JSON with ``\\u`` escapes for every non-ASCII character, else raw."""
    end = "\r\n" if crlf else "\n"
    header = ["text"] if drop_label_column else ["text", "label"]
    if fmt == "jsonl":
        lines = []
        for text, label, keep in rows:
            record = {"text": text, "label": label} if keep and not drop_label_column else {
                "text": text}
            lines.append(json.dumps(record, ensure_ascii=escape))
        data = end.join(lines) + end
    elif fmt == "csv":
        # A "\r\n" terminator makes the writer quote a field holding either character; the
        # row's own ending is then the one chosen.
        def row(fields) -> str:
            out = io.StringIO()
            csv.writer(out, lineterminator="\r\n").writerow(fields)
            return out.getvalue().removesuffix("\r\n") + end

        data = row(header) + "".join(
            row([text] if drop_label_column else [text, label if keep else ""])
            for text, label, keep in rows
        )
    else:  # tsv: written raw, as an editor would; a tab or line break in a field breaks the row
        data = "\t".join(header) + end + "".join(
            (text if drop_label_column else f"{text}\t{label if keep else ''}") + end
            for text, label, keep in rows
        )
    path = folder / f"f{next(_COUNTER)}.{fmt}"
    path.write_bytes((("\ufeff" if bom else "") + data).encode("utf-8"))
    return path


def _well_formed(fmt: str, rows, drop_label_column: bool) -> bool:
    """Whether the file must read: every field present and sound, one label type, two labels."""
    if drop_label_column or not all(keep for _, _, keep in rows):
        return False
    names = [str(label).strip() for _, label, _ in rows]
    if any(not clean_tokens(text) for text, _, _ in rows) or not all(names):
        return False
    if fmt == "tsv" and any(c in str(f) for t, lab, _ in rows for f in (t, lab) for c in "\t\r\n"):
        return False
    if fmt == "jsonl" and len({type(label) for _, label, _ in rows}) > 1:
        return False
    if all(_INTEGER.fullmatch(n) for n in names) and len(set(names)) != len({int(n) for n in names}):
        return False  # "1" and "01": one number spelled two ways
    return len(set(names)) >= 2


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["csv", "tsv", "jsonl"]),
    rows=records(),
    bom=st.booleans(),
    crlf=st.booleans(),
    drop_label_column=st.sampled_from([False] * 9 + [True]),
    escape=st.booleans(),
)
def test_a_data_file_reads_as_written_or_fails_with_one_line_naming_it(
    folder, fmt, rows, bom, crlf, drop_label_column, escape
):
    path = _write(
        folder, fmt, rows, bom=bom, crlf=crlf, drop_label_column=drop_label_column, escape=escape
    )
    cfg = DataConfig(name="file", train_file=str(path), dev_file=str(path), test_file=str(path))
    try:
        ds = load_table(cfg)
    except DataError as err:
        message = str(err)
        event(f"{fmt} refused: {message.split(': ', 1)[1][:40]}")
        assert message.startswith(f"{path}:") and "\n" not in message and "\r" not in message
        assert not _well_formed(fmt, rows, drop_label_column), message
        return
    # Read: each example is one written row, in order, with its tokens and its label.
    examples = ds.splits["train"]
    written = [(clean_tokens(t), str(label).strip()) for t, label, _ in rows]
    got = [(list(ex.tokens), ds.label_names[ex.label]) for ex in examples]
    event(f"{fmt} read, well formed: {_well_formed(fmt, rows, drop_label_column)}")
    if _well_formed(fmt, rows, drop_label_column):
        assert got == written
    else:  # read despite an oddity (e.g. a TSV field's line break): still rows that were written
        texts_written = [tokens for tokens, _ in written]
        assert all(tokens and label for tokens, label in got)
        assert all(tokens in texts_written or fmt == "tsv" for tokens, _ in got)
    assert ds.splits["dev"] == ds.splits["test"] and len(ds.splits["dev"]) == len(examples)
    lines = [int(ex.uid.rsplit(":", 1)[1]) for ex in examples]
    assert lines == sorted(set(lines))
