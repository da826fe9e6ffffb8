"""Data sets the project generates itself from a seed, so tests and demos need no files.

``synthetic``: binary classification with planted rationale tokens. Each text is a run of neutral
filler words with a few class-bearing words planted at random places; the label is the class that
has more planted words. The rationale mask marks the planted words, so the ground-truth importance
of every token is known. Counting class words solves it, and a BiLSTM can carry that count to every
position, so an average of its states does as well as attending to them: uniform attention loses
nothing here, and the tests of attention that assume the model needs it say little.

``synthetic_aspects``: a pair task on which attention is needed. The text mentions two to four aspects
of a film, each aspect word followed by a class word ("... pacing tedious ... visuals superb ..."); the
query names one of them, and the label is the class of the word after it. The model has to find one
position among look-alikes, chosen by the query: attention does, while an average of the text's states,
fixed before the query is seen, has to carry every aspect's class at once. The rationale marks the
class word of the asked aspect.

``make_babi``: bAbI-style question answering (Weston et al., 2015, tasks 1-3). A story simulates
four people moving between six places and picking up / dropping three objects, with bAbI's
templates and verbs. Questions are asked only when the answer follows from the facts:

* task 1 "Where is Mary?": one supporting fact, the person's last move;
* task 2 "Where is the football?": two, the last pick-up/drop of the object and the move that put
  its carrier where it is (or was when it was dropped);
* task 3 "Where was the football before the kitchen?": three, as bAbI marks them: the carrier's
  last pick-up/drop of the object, the carried move into the kitchen and the carrier's move before
  it (whose place is the answer). As in bAbI, "before the kitchen" means before the object's
  latest arrival there when it has been there more than once.

Stories are written as bAbI text lines and read back with the parser of the real files
(:func:`jaxattn.data.corpora.babi.parse_babi_lines`), so generated and real data share one
layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from jaxattn.data.corpora.babi import babi_dataset, parse_babi_lines
from jaxattn.data.dataset import Dataset, Example

POSITIVE_WORDS = (
    "excellent",
    "superb",
    "delightful",
    "moving",
    "brilliant",
    "charming",
    "gripping",
)
NEGATIVE_WORDS = ("dreadful", "boring", "clumsy", "tedious", "awful", "bland", "lifeless")
FILLER_WORDS = tuple(
    "the a film movie story plot it this that was is and of to in on with its cast scene "
    "director actor script ending music camera one some very quite rather who which as by "
    "an at for from had has have been be about into than then there their they them".split()
)
# Words planted at the same rate in both classes: frequent but uninformative, so a model must
# find the class words rather than any rare word.
DECOY_WORDS = ("surprisingly", "honestly", "frankly", "overall", "certainly", "simply")


def _generated_splits(
    example: Callable[[np.random.Generator, str], Example],
    n_train: int,
    n_dev: int,
    n_test: int,
    seed: int,
) -> dict[str, list[Example]]:
    """train, dev and test of ``example(rng, uid)`` draws, in that order from one generator seeded
    with ``seed`` (so a split's examples depend on the sizes of the splits before it)."""
    rng = np.random.default_rng(seed)
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    return {name: [example(rng, f"{name}:{i}") for i in range(n)] for name, n in sizes.items()}


def _synthetic_example(rng: np.random.Generator, uid: str) -> Example:
    label = int(rng.integers(2))
    length = int(rng.integers(8, 33))
    n_signal = int(rng.integers(1, 4))
    n_counter = int(rng.integers(0, n_signal))  # strictly fewer words of the other class
    n_decoy = int(rng.integers(0, 3))
    own = POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS
    other = NEGATIVE_WORDS if label == 1 else POSITIVE_WORDS
    tokens = list(rng.choice(FILLER_WORDS, size=length))
    rationale = [0] * length
    planted = (
        [(w, 1) for w in rng.choice(own, n_signal)]
        + [(w, 1) for w in rng.choice(other, n_counter)]
        + [(w, 0) for w in rng.choice(DECOY_WORDS, n_decoy)]
    )
    places = rng.choice(length, size=len(planted), replace=False)
    for (word, is_rationale), place in zip(planted, places):
        tokens[place] = str(word)
        rationale[place] = is_rationale
    return Example(
        tokens=tuple(str(t) for t in tokens), label=label, rationale=tuple(rationale), uid=uid
    )


def make_synthetic(
    n_train: int = 3000, n_dev: int = 500, n_test: int = 1000, seed: int = 0
) -> Dataset:
    """The planted-rationale binary task (deterministic for a given ``seed``)."""
    splits = _generated_splits(_synthetic_example, n_train, n_dev, n_test, seed)
    return Dataset(
        name="synthetic",
        task="binary",
        label_names=("negative", "positive"),
        splits=splits,
        source=f"generated (jaxattn.data.generators.make_synthetic, seed={seed})",
        notes=("rationale = planted class words (ground-truth importance)",),
    )


ASPECT_WORDS = ("acting", "soundtrack", "dialogue", "pacing", "visuals", "costumes", "humour", "sets")


def _aspects_example(rng: np.random.Generator, uid: str) -> Example:
    n = int(rng.integers(2, 5))
    aspects = rng.choice(ASPECT_WORDS, n, replace=False)
    words = rng.choice(POSITIVE_WORDS + NEGATIVE_WORDS, n, replace=False)
    length = int(rng.integers(16, 41))
    tokens = [str(t) for t in rng.choice(FILLER_WORDS, size=length)]
    rationale = [0] * length
    # Each (aspect, class word) pair takes two positions; even starts keep the pairs apart.
    starts = sorted(int(p) for p in rng.choice(np.arange(0, length - 1, 2), n, replace=False))
    asked = int(rng.integers(n))
    for j, (aspect, word, start) in enumerate(zip(aspects, words, starts)):
        tokens[start], tokens[start + 1] = str(aspect), str(word)
        rationale[start + 1] = int(j == asked)
    return Example(tokens=tuple(tokens), label=int(str(words[asked]) in POSITIVE_WORDS),
                   query=(str(aspects[asked]),), rationale=tuple(rationale), uid=uid)


def make_synthetic_aspects(
    n_train: int = 3000, n_dev: int = 500, n_test: int = 1000, seed: int = 0
) -> Dataset:
    """The asked-aspect pair task (deterministic for a given ``seed``): text, query = one aspect
    word, label = the class of the class word right after that aspect in the text."""
    splits = _generated_splits(_aspects_example, n_train, n_dev, n_test, seed)
    return Dataset(
        name="synthetic_aspects",
        task="nli",  # a pair task: the query is the asked aspect
        label_names=("negative", "positive"),
        splits=splits,
        source=f"generated (jaxattn.data.generators.make_synthetic_aspects, seed={seed})",
        notes=("query = the asked aspect; label = the class of the word after it in the text",
               "rationale = the class word of the asked aspect (ground-truth importance)"),
    )


# ---------------------------------------------------------------------------------------------
# bAbI tasks 1-3

BABI_PEOPLE = ("Mary", "John", "Daniel", "Sandra")
BABI_PLACES = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
BABI_OBJECTS = ("apple", "football", "milk")
BABI_MOVES = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
BABI_GETS = ("picked up", "got", "grabbed", "took")
BABI_DROPS = ("dropped", "left", "discarded", "put down")
BABI_QUESTIONS_PER_STORY = 5
# Actions told between two questions, [low, high) per task (bAbI 10k averages: 2, ~4, ~15).
_BABI_GAPS = {1: (2, 3), 2: (1, 8), 3: (4, 26)}


def _pick(rng: np.random.Generator, options):
    """One of ``options`` (much faster than ``rng.choice`` for the few items used here)."""
    return options[int(rng.random() * len(options))]


@dataclasses.dataclass
class _Episode:
    """One object carried by one person: from the pick-up (line) to the drop (line), if any."""

    person: str
    last_event: int


@dataclasses.dataclass
class _Question:
    text: str
    answer: str
    support: tuple[int, ...]


@dataclasses.dataclass
class _Story:
    """The state of one story's world and the lines told so far (``lines[i]`` is line i + 1).

    Attributes:
      place: person -> (where they are, line of the move there).
      held: object -> its open carrying episode.
      dropped: object -> (where it lies, line of the drop, line of the dropper's move there).
      transitions: object -> per carried move (place before, place after, its episode,
        line of the move, line of the carrier's previous move).
    """

    lines: list[str] = dataclasses.field(default_factory=list)
    place: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)
    held: dict[str, _Episode] = dataclasses.field(default_factory=dict)
    dropped: dict[str, tuple[str, int, int]] = dataclasses.field(default_factory=dict)
    transitions: dict[str, list[tuple[str, str, _Episode, int, int]]] = dataclasses.field(
        default_factory=dict
    )

    def tell(self, text: str) -> int:
        self.lines.append(text)
        return len(self.lines)


def _babi_move(story: _Story, rng: np.random.Generator) -> None:
    person = _pick(rng, BABI_PEOPLE)
    before = story.place.get(person)
    place = _pick(rng, [p for p in BABI_PLACES if before is None or p != before[0]])
    line = story.tell(f"{person} {_pick(rng, BABI_MOVES)} the {place}.")
    story.place[person] = (place, line)
    for obj, episode in story.held.items():
        if episode.person == person:
            story.transitions[obj].append((before[0], place, episode, line, before[1]))


def _babi_get(story: _Story, rng: np.random.Generator, there: float) -> bool:
    # An object never seen yet is wherever its first taker stands; a dropped one stays put.
    options = [
        (person, obj)
        for person, (here, _) in sorted(story.place.items())
        for obj in BABI_OBJECTS
        if obj not in story.held and (obj not in story.dropped or story.dropped[obj][0] == here)
    ]
    if not options:
        return False
    person, obj = _pick(rng, options)
    suffix = " there" if rng.random() < there else ""
    line = story.tell(f"{person} {_pick(rng, BABI_GETS)} the {obj}{suffix}.")
    story.held[obj] = _Episode(person, line)
    story.dropped.pop(obj, None)
    story.transitions.setdefault(obj, [])
    return True


def _babi_drop(story: _Story, rng: np.random.Generator) -> bool:
    if not story.held:
        return False
    obj = _pick(rng, sorted(story.held))
    episode = story.held.pop(obj)
    suffix = " there" if rng.random() < 0.2 else ""
    line = story.tell(f"{episode.person} {_pick(rng, BABI_DROPS)} the {obj}{suffix}.")
    episode.last_event = line
    place, move_line = story.place[episode.person]
    story.dropped[obj] = (place, line, move_line)
    return True


def _babi_questions(story: _Story, task: int) -> list[_Question]:
    """Every question whose answer follows from the story so far, with its supporting lines."""
    if task == 1:
        return [
            _Question(f"Where is {person}?", place, (line,))
            for person, (place, line) in sorted(story.place.items())
        ]
    if task == 2:
        out = []
        for obj, episode in sorted(story.held.items()):
            place, move_line = story.place[episode.person]
            out.append(_Question(f"Where is the {obj}?", place, (episode.last_event, move_line)))
        for obj, (place, drop_line, move_line) in sorted(story.dropped.items()):
            out.append(_Question(f"Where is the {obj}?", place, (drop_line, move_line)))
        return out
    out = []
    for obj, transitions in sorted(story.transitions.items()):
        latest = {
            after: (before, episode, line, prev)
            for before, after, episode, line, prev in transitions
        }
        for after, (before, episode, line, prev) in sorted(latest.items()):
            question = f"Where was the {obj} before the {after}?"
            out.append(_Question(question, before, (episode.last_event, line, prev)))
    return out


def babi_story(task: int, rng: np.random.Generator) -> list[str]:
    """One story of ``BABI_QUESTIONS_PER_STORY`` questions as numbered bAbI lines."""
    if task not in (1, 2, 3):
        raise ValueError(f"bAbI task must be 1, 2 or 3, got {task}")
    story = _Story()
    there = 1.0 if task == 2 else 0.2  # task 2 always says "got the milk there"

    def act() -> None:
        """A pick-up (25%), a drop (20%) or else a move; task 1 only moves people."""
        r = rng.random() if task > 1 else 1.0
        if r < 0.25 and _babi_get(story, rng, there):
            return
        if 0.25 <= r < 0.45 and _babi_drop(story, rng):
            return
        _babi_move(story, rng)

    for _ in range(BABI_QUESTIONS_PER_STORY):
        for _ in range(int(rng.integers(*_BABI_GAPS[task]))):
            act()
        while not (questions := _babi_questions(story, task)):
            act()
        q = _pick(rng, questions)
        story.tell(f"{q.text} \t{q.answer}\t{' '.join(map(str, q.support))}")
    return [f"{i} {line}" for i, line in enumerate(story.lines, 1)]


def babi_lines(task: int, n_questions: int, rng: np.random.Generator) -> list[str]:
    """Stories totalling ``n_questions`` questions (rounded up to whole stories), as text lines."""
    n_stories = -(-n_questions // BABI_QUESTIONS_PER_STORY)
    return [line for _ in range(n_stories) for line in babi_story(task, rng)]


def make_babi(
    task: int, n_train: int = 10000, n_test: int = 1000, seed: int = 0, name: str | None = None
) -> Dataset:
    """Generated bAbI task 1, 2 or 3 with bAbI 10k's sizes (deterministic for a given ``seed``)."""
    rng = np.random.default_rng(seed)
    stories = {
        split: parse_babi_lines(babi_lines(task, n, rng), f"generated/qa{task}_{split}")
        for split, n in (("train", n_train), ("test", n_test))
    }
    return babi_dataset(
        name or f"babi{task}_generated",
        stories["train"],
        stories["test"],
        source=f"generated (jaxattn.data.generators.make_babi, task={task}, seed={seed})",
        notes=(
            "bAbI-style stories from the project's generator (bAbI's templates, not its files)",
        ),
    )
