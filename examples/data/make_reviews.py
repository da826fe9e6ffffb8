"""Writes ``reviews.csv``: 200 short synthetic movie-review sentences, half positive, half negative.

    python examples/data/make_reviews.py

The sentences are built from the word lists below with a fixed seed, so the file is the same on
every run. Some hold commas, which the CSV writer quotes; the file is a small example of your own
data for ``configs/user_csv_example.toml``.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_PER_CLASS = 100
SEED = 0

SUBJECTS = [
    "the film",
    "this movie",
    "the story",
    "the acting",
    "the soundtrack",
    "the ending",
    "the dialogue",
    "the cast",
    "the camera work",
    "the pacing",
    "the script",
    "the lead actor",
]
INTENSIFIERS = ["", "really ", "truly ", "quite ", "so ", "very "]
WORDS = {
    "positive": [
        "wonderful",
        "moving",
        "funny",
        "brilliant",
        "charming",
        "gripping",
        "beautiful",
        "clever",
    ],
    "negative": ["dull", "boring", "clumsy", "awful", "tedious", "flat", "predictable", "messy"],
}
OPENERS = ["", "honestly, ", "in the end, ", "to be fair, ", "from start to finish, "]
CLOSERS = {
    "positive": ["", " and I would watch it again", ", a real treat", " and worth every minute"],
    "negative": [
        "",
        " and I almost left early",
        ", a waste of an evening",
        " and hard to sit through",
    ],
}


def sentence(rng: random.Random, label: str) -> str:
    """One review sentence whose sentiment is ``label``."""
    other = "negative" if label == "positive" else "positive"
    text = (
        f"{rng.choice(OPENERS)}{rng.choice(SUBJECTS)} was "
        f"{rng.choice(INTENSIFIERS)}{rng.choice(WORDS[label])}"
    )
    if rng.random() < 0.25:  # a weaker remark the other way, so single words are not enough
        text += f", though {rng.choice(SUBJECTS)} was a bit {rng.choice(WORDS[other])}"
    text += rng.choice(CLOSERS[label])
    return text[0].upper() + text[1:] + "."


def rows(seed: int = SEED) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = [(sentence(rng, label), label) for label in WORDS for _ in range(N_PER_CLASS)]
    rng.shuffle(out)
    return out


def main() -> None:
    path = HERE / "reviews.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
