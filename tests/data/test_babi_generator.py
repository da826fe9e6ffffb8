"""The bAbI-style generator: deterministic, bAbI's layout, answers that follow from the facts."""

import re

import numpy as np
import pytest

from jaxattn.data.corpora.babi import parse_babi_lines
from jaxattn.data.generators import (
    BABI_DROPS,
    BABI_GETS,
    BABI_MOVES,
    BABI_PLACES,
    babi_lines,
    babi_story,
    make_babi,
)

MOVE = re.compile(rf"^(\w+) (?:{'|'.join(BABI_MOVES)}) the (\w+)\.$")
OBJECT = re.compile(rf"^(\w+) (?:{'|'.join(BABI_GETS + BABI_DROPS)}) the (\w+)(?: there)?\.$")


def _questions(lines):
    """(question, answer, {line number: sentence}) for each question of bAbI lines."""
    out = []
    for line in lines:
        number, text = line.rstrip("\n").split(" ", 1)
        if number == "1":
            sentences = {}
        if "\t" in text:
            question, answer, support = text.split("\t")
            facts = {int(s): sentences[int(s)] for s in support.split()}
            out.append((question.strip(), answer, facts))
        else:
            sentences[int(number)] = text
    return out


def _solve(task: int, question: str, facts: dict[int, str]) -> str:
    """Answers from the supporting facts alone, as a reader would."""
    moves = {n: MOVE.match(t).groups() for n, t in facts.items() if MOVE.match(t)}
    objects = {n: OBJECT.match(t).groups() for n, t in facts.items() if OBJECT.match(t)}
    assert len(moves) + len(objects) == len(facts) == task
    if task == 1:
        ((person, place),) = moves.values()
        assert question == f"Where is {person}?"
        return place
    ((carrier, obj),) = objects.values()
    assert all(person == carrier for person, _ in moves.values())
    if task == 2:
        assert question == f"Where is the {obj}?"
        ((_, place),) = moves.values()
        return place
    before, after = (moves[n][1] for n in sorted(moves))
    assert question == f"Where was the {obj} before the {after}?"
    return before


@pytest.mark.parametrize("task", [1, 2, 3])
def test_answer_follows_from_the_supporting_facts(task):
    questions = _questions(babi_lines(task, 300, np.random.default_rng(0)))
    assert len(questions) == 300
    for question, answer, facts in questions:
        assert answer in BABI_PLACES
        assert _solve(task, question, facts) == answer


@pytest.mark.parametrize("task", [1, 2, 3])
def test_the_same_reading_solves_the_real_files(real_data, task):
    """The generator marks supporting facts as bAbI does: the solver above answers every real
    test question from its marked facts alone."""
    (path,) = (real_data / "babi" / "en-10k").glob(f"qa{task}_*_test.txt")
    questions = _questions(path.read_text().splitlines())
    assert len(questions) == 1000
    assert all(_solve(task, q, facts) == answer for q, answer, facts in questions)


@pytest.mark.parametrize("task", [1, 2, 3])
def test_generation_is_deterministic_per_seed(task):
    assert babi_lines(task, 20, np.random.default_rng(5)) == babi_lines(
        task, 20, np.random.default_rng(5)
    )
    assert babi_lines(task, 20, np.random.default_rng(5)) != babi_lines(
        task, 20, np.random.default_rng(6)
    )


def test_lines_use_babi_format_and_task1_structure():
    lines = babi_story(1, np.random.default_rng(0))
    assert len(lines) == 15  # bAbI task 1: two moves then a question, five times
    assert [int(line.split(" ", 1)[0]) for line in lines] == list(range(1, 16))
    assert all(("\t" in line) == (i % 3 == 2) for i, line in enumerate(lines))
    assert re.fullmatch(r"3 Where is \w+\? \t\w+\t[12]", lines[2])


def test_dataset_layout_matches_the_real_files_and_rationale_aligns():
    ds = make_babi(2, n_train=200, n_test=50, seed=1)
    assert ds.name == "babi2_generated" and ds.task == "qa"
    assert ds.sizes() == {"train": 170, "dev": 30, "test": 50}  # 40 stories, 15% (6) to dev
    assert set(ds.label_names) <= set(BABI_PLACES)
    for ex in ds.splits["train"][:50]:
        assert len(ex.rationale) == len(ex.tokens)
        marked = [tok for tok, r in zip(ex.tokens, ex.rationale) if r]
        assert marked.count(".") == 2  # two supporting sentences, each ending in "."
        assert ds.label_names[ex.label] in marked  # the answer is in the marked facts
        assert ex.query[:3] == ("where", "is", "the") and ex.query[-1] == "?"
    again = make_babi(2, n_train=200, n_test=50, seed=1)
    assert again.splits["test"] == ds.splits["test"]


def test_generated_and_real_layout_agree(fixtures):
    real = fixtures / "babi" / "en-10k" / "qa1_single-supporting-fact_train.txt"
    real_q = parse_babi_lines(real.read_text().splitlines(), "real")[0][0]
    fake_q = parse_babi_lines(babi_story(1, np.random.default_rng(0)), "generated")[0][0]
    for q in (real_q, fake_q):
        marked = [t for t, r in zip(q.passage, q.rationale) if r]
        assert marked[-1] == "." and marked.count(".") == 1 and q.answer in marked
        assert q.query[:2] == ("where", "is") and q.query[-1] == "?"
        assert q.passage.count(".") == 2  # the two sentences told before the first question
