"""Parsers for the data files of a data directory, and the data set loaders built on them.

Expected layout, relative to the data directory (``--data-dir``, ``$JAXATTN_DATA``; see
``shared/data/README.md`` for provenance and counts)::

  sst2/{train,dev,test}.tsv                 label<TAB>text, PTB-tokenised, lower-cased
  20news_sports/{train,test}.jsonl          {"text", "label", "group", "id"}, raw posts
  ag_news/test.csv                          "class_index","title","description" (no header)
  snli/{dev,test}.jsonl                     {"premise", "hypothesis", "label", ...}
  babi/en-10k/qa{N}_*_{train,test}.txt      bAbI v1.2 (babi/en/ holds the 1k versions)
  eraser_movies/{train,val,test}.jsonl      ERASER annotations; docs/<docid> the reviews

Every parser checks what it reads. A malformed line raises :class:`DataError` as
``path:line: what`` (wrong column count, bad JSON, unknown label, empty text, a bAbI line without
its number, a byte that is not UTF-8); so does an empty file (``path: is empty``); a missing file
raises :class:`MissingDataError` naming the path looked for. Files are read through
:func:`read_data_text` (strict UTF-8; a UTF-8 byte-order mark is accepted and dropped).

Empty texts: a text field that is empty in the file is a malformed line (error). Texts emptied by
this module's own processing (20 Newsgroups posts that are all header, quote and signature) are
dropped and counted in the data set's notes. Labels outside the data set's label set are always
an error; the one exception is SNLI's documented ``-`` (no gold label), skipped and counted as
every SNLI study does.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from jaxattn.data.dataset import SPLITS, DataError, Dataset, Example
from jaxattn.data.splits import SPLIT_SEED, carve, carve_groups
from jaxattn.data.vocab import clean_tokens
from jaxattn.errors import read_text, text_lines

HOW_TO_POINT = (
    "set --data-dir (jaxattn train, reproduce, data list), data.data_dir or $JAXATTN_DATA "
    "to the folder holding the data"
)


class MissingDataError(DataError):
    """The files a data set needs are not in the data directory (a fallback may apply)."""


def data_file(data_dir: Path | None, relpath: str, dataset: str) -> Path:
    """``data_dir / relpath`` if that file exists, else :class:`MissingDataError`."""
    if data_dir is None:
        raise MissingDataError(
            f"{dataset}: no data directory found (needs {relpath}); {HOW_TO_POINT}"
        )
    path = Path(data_dir) / relpath
    if path.is_dir():  # there, but wrong: no reason to fall back to another source
        raise DataError(f"{path}: is a folder, not a data file")
    if not path.is_file():
        raise MissingDataError(f"{dataset}: {path} not found; {HOW_TO_POINT}")
    return path


def read_data_text(path: str | Path) -> str:
    """The text of a data file; :class:`DataError` naming the file (and line) when it is not UTF-8,
    empty or unreadable."""
    return read_text(path, error=DataError, what="data file")


def line_error(where: str | Path, line: int, what: str) -> DataError:
    """The error for a bad line: ``where:line: what``."""
    return DataError(f"{where}:{line}: {what}")


def _uid(path: Path, line: int) -> str:
    return f"{path.parent.name}/{path.name}:{line}"


def _source(paths: Iterable[Path]) -> str:
    return ", ".join(str(p) for p in paths)


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line."""
    for n, line in enumerate(text_lines(read_data_text(path)), 1):
        line = line.rstrip("\r\n")
        if line.strip():
            yield n, line


# A \uD800-\uDFFF escape without its partner decodes to a string that cannot be written as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    for n, line in _numbered_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise line_error(path, n, f"not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise line_error(path, n, "expected a JSON object")
        if "\\u" in line and _LONE_SURROGATE.search(json.dumps(record, ensure_ascii=False)):
            raise line_error(path, n, "a \\u escape stands for half a character (lone surrogate)")
        yield n, record


def _text_field(record: Mapping, key: str, path: Path, line: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise line_error(path, line, f"field {key!r} missing or not a string")
    return value


def _label(value: object, labels: Mapping, path: Path, line: int) -> int:
    # JSON true/false would pass as 1/0 and lists are unhashable: neither is a label.
    if isinstance(value, (bool, list, dict)) or value not in labels:
        raise line_error(
            path, line, f"unknown label {value!r} (expected one of {', '.join(map(str, labels))})"
        )
    return labels[value]


def _tokens(text: str, path: Path, line: int, *, pretokenized: bool = False) -> tuple[str, ...]:
    tokens = clean_tokens(text, pretokenized=pretokenized)
    if not tokens:
        raise line_error(path, line, "empty text")
    return tuple(tokens)


# ---------------------------------------------------------------------------------------------
# SST-2


def parse_sst2(path: Path) -> list[Example]:
    """``label<TAB>text`` lines (label 0/1, text already tokenised)."""
    out = []
    for n, line in _numbered_lines(path):
        cols = line.split("\t")
        if len(cols) != 2:
            raise line_error(
                path, n, f"expected 2 tab-separated columns (label, text), got {len(cols)}"
            )
        label = _label(cols[0].strip(), {"0": 0, "1": 1}, path, n)
        out.append(Example(_tokens(cols[1], path, n, pretokenized=True), label, uid=_uid(path, n)))
    return out


def load_sst2(data_dir: Path | None) -> Dataset:
    paths = {split: data_file(data_dir, f"sst2/{split}.tsv", "sst2") for split in SPLITS}
    return Dataset(
        name="sst2",
        task="binary",
        label_names=("negative", "positive"),
        splits={split: parse_sst2(path) for split, path in paths.items()},
        source=_source(paths.values()),
        notes=("SST-2 sentences (neutral removed) with their own train/dev/test split",),
    )


# ---------------------------------------------------------------------------------------------
# 20 Newsgroups, baseball vs hockey

# Lines that introduce or are quoted text (scikit-learn's rule for remove=("quotes",)).
_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_newsgroup_header(text: str) -> str:
    """Drops everything up to the first blank line (the news headers)."""
    return text.partition("\n\n")[2]


def strip_newsgroup_footer(text: str) -> str:
    """Drops the signature: everything after the last blank or dashes-only line, if any."""
    lines = text.strip().split("\n")
    for i in range(len(lines) - 1, 0, -1):
        if not lines[i].strip().strip("-"):
            return "\n".join(lines[:i])
    return text


def strip_newsgroup_quoting(text: str) -> str:
    """Drops quoted lines and the "... writes:" lines that introduce them."""
    return "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.search(line))


def strip_newsgroup(text: str) -> str:
    """Headers, signature, then quotes: scikit-learn's remove=('headers','footers','quotes')."""
    return strip_newsgroup_quoting(strip_newsgroup_footer(strip_newsgroup_header(text)))


def parse_newsgroups(path: Path) -> list[tuple[str, int, str]]:
    """(raw post, label, uid) per JSON line ``{"text", "label": 0|1, "id"}``; nothing stripped."""
    out = []
    for n, record in _json_lines(path):
        text = _text_field(record, "text", path, n)
        if not text.strip():
            raise line_error(path, n, "empty text")
        label = _label(record.get("label"), {0: 0, 1: 1}, path, n)
        uid = record.get("id") if isinstance(record.get("id"), str) else _uid(path, n)
        out.append((text, label, uid))
    return out


def load_20news_sports(data_dir: Path | None) -> Dataset:
    paths = [
        data_file(data_dir, f"20news_sports/{split}.jsonl", "20news_sports")
        for split in ("train", "test")
    ]
    examples, empty = [], 0
    for path in paths:
        for text, label, uid in parse_newsgroups(path):
            tokens = clean_tokens(strip_newsgroup(text))
            if tokens:
                examples.append(Example(tuple(tokens), label, uid=uid))
            else:
                empty += 1
    outer = carve(examples, {"rest": 0.8, "test": 0.2})
    inner = carve(outer["rest"], {"train": 0.8, "dev": 0.2})
    return Dataset(
        name="20news_sports",
        task="binary",
        label_names=("baseball", "hockey"),
        splits={"train": inner["train"], "dev": inner["dev"], "test": outer["test"]},
        source=_source(paths),
        notes=(
            "headers, signatures and quoted lines removed by scikit-learn's "
            "remove=('headers','footers','quotes') rules",
            f"{empty} posts empty after stripping were dropped",
            "bydate train+test pooled and re-split as J&W did: stratified 80/20 train/test, then "
            f"20% of train as dev (seed {SPLIT_SEED}; not J&W's exact partition)",
        ),
    )


# ---------------------------------------------------------------------------------------------
# AG News, World vs Business

# World (1) -> 0 and Business (3) -> 1; Sports (2) and Sci/Tech (4) are not part of the task.
AG_NEWS_CLASSES = {"1": 0, "2": -1, "3": 1, "4": -1}


def _unescape_ag_news(text: str) -> str:
    """Undoes the corpus's escaping: ``#39;`` (an entity that lost its ``&``), ``&lt;`` etc., and
    backslashes standing for line breaks."""
    text = re.sub(r"(?<!&)#(\d+);", r"&#\1;", text.replace("\\", " "))
    return html.unescape(text)


def parse_ag_news(path: Path) -> list[Example]:
    """World and Business rows of an AG News CSV (description column only)."""
    out = []
    reader = csv.reader(io.StringIO(read_data_text(path), newline=""))
    start = 1
    try:
        for row in reader:
            n, start = start, reader.line_num + 1  # a quoted field may span lines
            if not row:
                continue
            if len(row) != 3:
                raise line_error(
                    path, n, f"expected 3 columns (class, title, description), got {len(row)}"
                )
            label = _label(row[0].strip(), AG_NEWS_CLASSES, path, n)
            if label < 0:
                continue
            tokens = _tokens(_unescape_ag_news(row[2]), path, n)
            out.append(Example(tokens, label, uid=_uid(path, n)))
    except csv.Error as err:
        raise line_error(path, reader.line_num, f"malformed CSV ({err})") from None
    return out


def load_ag_news(data_dir: Path | None) -> Dataset:
    path = data_file(data_dir, "ag_news/test.csv", "ag_news")
    examples = parse_ag_news(path)
    splits = carve(examples, {"train": 0.7, "dev": 0.1, "test": 0.2})
    return Dataset(
        name="ag_news",
        task="binary",
        label_names=("world", "business"),
        splits=splits,
        source=str(path),
        notes=(
            f"only the AG News test file is available: its {len(examples)} World/Business rows "
            f"are split stratified 70/10/20 into train/dev/test (seed {SPLIT_SEED}); J&W "
            "trained on the 60k training rows and tested on all of these",
            "description column only, as J&W",
        ),
    )


# ---------------------------------------------------------------------------------------------
# SNLI

SNLI_LABELS = ("entailment", "neutral", "contradiction")


def parse_snli(path: Path) -> tuple[list[Example], int]:
    """Premise -> tokens, hypothesis -> query; returns (examples, pairs skipped for label ``-``)."""
    out, skipped = [], 0
    labels = {name: i for i, name in enumerate(SNLI_LABELS)}
    for n, record in _json_lines(path):
        if record.get("label") == "-":
            skipped += 1
            continue
        label = _label(record.get("label"), labels, path, n)
        premise = _tokens(_text_field(record, "premise", path, n), path, n, pretokenized=True)
        hypothesis = _tokens(_text_field(record, "hypothesis", path, n), path, n, pretokenized=True)
        out.append(Example(premise, label, query=hypothesis, uid=_uid(path, n)))
    return out, skipped


def load_snli(data_dir: Path | None) -> Dataset:
    dev_path = data_file(data_dir, "snli/dev.jsonl", "snli")
    test_path = data_file(data_dir, "snli/test.jsonl", "snli")
    dev, skipped_dev = parse_snli(dev_path)
    test, skipped_test = parse_snli(test_path)
    carved = carve(dev, {"train": 0.9, "dev": 0.1})
    notes = [
        "no SNLI training set here: trains on a stratified 90% of SNLI dev, selects models on "
        f"the other 10% (seed {SPLIT_SEED}) and tests on SNLI test; J&W trained on the 550k "
        "training pairs",
    ]
    if skipped_dev or skipped_test:
        notes.append(f"pairs without a gold label skipped: dev {skipped_dev}, test {skipped_test}")
    return Dataset(
        name="snli",
        task="nli",
        label_names=SNLI_LABELS,
        splits={"train": carved["train"], "dev": carved["dev"], "test": test},
        source=_source([dev_path, test_path]),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# bAbI

BABI_DEV_FRACTION = 0.15


@dataclasses.dataclass(frozen=True)
class BabiQuestion:
    """One bAbI question with the story told so far.

    Attributes:
      passage: tokens of every story sentence before the question, in order (each ends in ".").
      query: the question's tokens.
      answer: the answer word.
      rationale: 1 on the tokens of the supporting-fact sentences, aligned with ``passage``.
      uid: ``file:line`` of the question.
    """

    passage: tuple[str, ...]
    query: tuple[str, ...]
    answer: str
    rationale: tuple[int, ...]
    uid: str


def parse_babi_lines(lines: Iterable[str], where: str) -> list[list[BabiQuestion]]:
    """Parses bAbI's format into stories (lists of questions).

    Every line is ``NUMBER sentence`` or ``NUMBER question<TAB>answer<TAB>supporting numbers``;
    numbering restarts at 1 with each story and supporting numbers name earlier sentences of it.
    ``where`` names the file in error messages and uids.
    """
    stories: list[list[BabiQuestion]] = []
    passage: list[str] = []  # the story's sentences so far, token by token
    owner: list[int] = []  # for each token of ``passage``, the number of its sentence
    last = 0
    seen: dict[str, tuple[str, ...]] = {}  # bAbI repeats a few hundred sentences over and over
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        head, _, text = line.partition(" ")
        if not head.isdigit() or not text.strip():
            raise line_error(where, n, f"expected 'NUMBER text', got {line[:40]!r}")
        number = int(head)
        if number == 1:
            stories.append([])
            passage, owner = [], []
        elif number != last + 1:
            raise line_error(where, n, f"line number {number} does not follow {last}")
        last = number
        if "\t" not in text:
            if text not in seen:
                seen[text] = _tokens(text, where, n)
            passage += seen[text]
            owner += [number] * len(seen[text])
            continue
        fields = text.split("\t")
        if len(fields) != 3:
            raise line_error(
                where, n, "a question needs question<TAB>answer<TAB>supporting line numbers"
            )
        question, answer, support_text = fields
        support_ids = support_text.split()
        if not answer.strip() or not support_ids or not all(s.isdigit() for s in support_ids):
            raise line_error(
                where, n, f"bad answer or supporting facts: {answer!r}, {support_text!r}"
            )
        support = {int(s) for s in support_ids}
        if not support <= set(owner):
            raise line_error(
                where,
                n,
                f"supporting facts {sorted(support - set(owner))} are not earlier sentences",
            )
        stories[-1].append(
            BabiQuestion(
                passage=tuple(passage),
                query=_tokens(question, where, n),
                answer=answer.strip().lower(),
                rationale=tuple(map(int, map(support.__contains__, owner))),
                uid=f"{where}:{n}",
            )
        )
    return stories


def babi_dataset(
    name: str,
    train: list[list[BabiQuestion]],
    test: list[list[BabiQuestion]],
    source: str,
    notes: tuple[str, ...] = (),
) -> Dataset:
    """A QA :class:`Dataset`: answers from train are the labels, dev = 15% of the train stories."""
    answers = tuple(sorted({q.answer for story in train for q in story}))
    index = {a: i for i, a in enumerate(answers)}

    def examples(questions: list[BabiQuestion]) -> list[Example]:
        out = []
        for q in questions:
            if q.answer not in index:
                raise DataError(f"{q.uid}: answer {q.answer!r} never occurs in the training file")
            out.append(Example(q.passage, index[q.answer], q.query, q.rationale, q.uid))
        return out

    rest, dev = carve_groups(train, BABI_DEV_FRACTION)
    return Dataset(
        name=name,
        task="qa",
        label_names=answers,
        splits={
            "train": examples(rest),
            "dev": examples(dev),
            "test": examples([q for story in test for q in story]),
        },
        source=source,
        notes=(
            *notes,
            f"dev = {BABI_DEV_FRACTION:.0%} of the training stories (whole stories, "
            f"seed {SPLIT_SEED})",
            "rationale = the tokens of the supporting-fact sentences",
        ),
    )


def _babi_file(data_dir: Path | None, task: int, split: str) -> tuple[Path, str | None]:
    """The 10k file for ``task``/``split``, else the 1k one with a note saying so."""
    pattern = f"qa{task}_*_{split}.txt"
    if data_dir is not None:
        for folder in ("en-10k", "en"):
            found = sorted((Path(data_dir) / "babi" / folder).glob(pattern))
            if found:
                note = (
                    None
                    if folder == "en-10k"
                    else f"babi/en-10k has no {split} file for task {task}: using the 1k one"
                )
                return found[0], note
    looked = f"{data_dir}/babi/{{en-10k,en}}/{pattern}" if data_dir else f"babi/en-10k/{pattern}"
    raise MissingDataError(
        f"babi{task}: {looked} not found; {HOW_TO_POINT} (data.name = 'babi{task}_generated' "
        "asks for the project's generated copy instead)"
    )


def load_babi(data_dir: Path | None, task: int) -> Dataset:
    """bAbI task 1, 2 or 3 from the files (10k train where available)."""
    files = {split: _babi_file(data_dir, task, split) for split in ("train", "test")}
    stories = {}
    for split, (path, _) in files.items():
        lines = text_lines(read_data_text(path))
        stories[split] = parse_babi_lines(lines, f"babi/{path.parent.name}/{path.name}")
    notes = tuple(note for _, note in files.values() if note)
    return babi_dataset(
        f"babi{task}",
        stories["train"],
        stories["test"],
        _source(p for p, _ in files.values()),
        notes,
    )


# ---------------------------------------------------------------------------------------------
# ERASER movies

ERASER_LABELS = {"NEG": 0, "POS": 1}


def _evidence_mask(record: dict, docid: str, raw: list[str], path: Path, line: int) -> list[int]:
    mask = [0] * len(raw)
    groups = record.get("evidences") or []
    if not isinstance(groups, list):
        raise line_error(path, line, "'evidences' must be a list of lists")
    for group in groups:
        for ev in group if isinstance(group, list) else [group]:
            if not isinstance(ev, dict) or ev.get("docid") != docid:
                raise line_error(path, line, f"an evidence does not belong to document {docid}")
            start, end = ev.get("start_token"), ev.get("end_token")
            if not (
                isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(raw)
            ):
                raise line_error(
                    path,
                    line,
                    f"evidence span [{start}, {end}) outside the {len(raw)} tokens of {docid}",
                )
            if "text" in ev and ev["text"].split() != raw[start:end]:
                raise line_error(
                    path, line, f"evidence text differs from tokens [{start}, {end}) of {docid}"
                )
            mask[start:end] = [1] * (end - start)  # ERASER's test set has a few empty spans
    return mask


def parse_eraser(path: Path, docs_dir: Path) -> list[Example]:
    """ERASER annotations with their documents; rationale = union of the evidence spans.

    Evidence offsets count the whitespace tokens of the whole document. Cleaning lower-cases and
    maps digit runs to ``qqq`` token by token (``clean_tokens(..., pretokenized=True)``), so the
    token count and the offsets are unchanged; a document where they would change is an error.
    """
    out = []
    for n, record in _json_lines(path):
        label = _label(record.get("classification"), ERASER_LABELS, path, n)
        docid = _text_field(record, "annotation_id", path, n)
        doc_path = docs_dir / docid
        if not doc_path.is_file():
            raise line_error(path, n, f"document {doc_path} not found")
        text = read_data_text(doc_path)
        raw = text.split()
        tokens = _tokens(text, doc_path, 1, pretokenized=True)
        if len(tokens) != len(raw):
            raise line_error(
                path, n, f"cleaning {docid} changed its token count, evidence offsets would shift"
            )
        rationale = _evidence_mask(record, docid, raw, path, n)
        out.append(Example(tokens, label, rationale=tuple(rationale), uid=f"eraser_movies/{docid}"))
    return out


def load_eraser_movies(data_dir: Path | None) -> Dataset:
    paths = {
        split: data_file(data_dir, f"eraser_movies/{name}.jsonl", "eraser_movies")
        for split, name in (("train", "train"), ("dev", "val"), ("test", "test"))
    }
    docs_dir = paths["train"].parent / "docs"
    return Dataset(
        name="eraser_movies",
        task="binary",
        label_names=("negative", "positive"),
        splits={split: parse_eraser(path, docs_dir) for split, path in paths.items()},
        source=_source([*paths.values(), docs_dir]),
        notes=(
            "ERASER movie reviews with their train/val/test split (val used as dev)",
            "rationale = union of the human evidence spans (token offsets kept: cleaning maps "
            "tokens one to one)",
        ),
    )
