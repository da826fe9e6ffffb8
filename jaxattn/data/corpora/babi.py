"""bAbI v1.2 tasks 1-3: ``babi/en-10k/qa{N}_*_{train,test}.txt`` (``babi/en/``: the 1k versions).

:func:`parse_babi_lines` and :func:`babi_dataset` also serve the project's generated bAbI
(:mod:`jaxattn.data.generators`), so generated and real data share one layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from jaxattn.core.errors import text_lines
from jaxattn.data.dataset import DataError, Dataset, Example
from jaxattn.data.files import (
    HOW_TO_POINT,
    MissingDataError,
    line_error,
    line_tokens,
    numbered,
    read_data_text,
    source_of,
)
from jaxattn.data.splits import SPLIT_SEED, carve_groups

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
    for n, line in numbered(lines):
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
                seen[text] = line_tokens(text, where, n)
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
                query=line_tokens(question, where, n),
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
        source_of(p for p, _ in files.values()),
        notes,
    )
