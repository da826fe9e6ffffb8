"""Writes ``configs/<dataset>_<encoder>_<attention>.toml`` for every registered data set.

    python configs/generate.py          # (re)write the files
    python configs/generate.py --check  # exit 1 if a file is missing or differs

The values follow the protocol (``PROTOCOL.md`` sections 1-2): binary tasks 8 epochs of batch 32,
SNLI 25 epochs of batch 128, bAbI 100 epochs of batch 50 with random 50-d embeddings; real binary
and NLI data start from GloVe 6B 50-d (the pretrained vectors a registry package ships; J&W used
300-d fastText/GloVe). The synthetic task is small: random 64-d embeddings, hidden 64, 4 epochs. Transformer configs train
the same way with a 2-layer, 4-head, width-128 encoder (feed-forward 256) in place of hidden_size,
and learned positions enough for the data set's longest texts. The Orthogonal and Diversity LSTMs
(``ortho_lstm``, ``diversity_lstm``) are bidirectional with the BiLSTM's sizes; the Diversity LSTM's
conicity weight is 0.5 (0.1 for SNLI). ``--set model.directions=1 --set model.hidden_size=256``
gives the published unidirectional shape.
Vocabulary and length filters are left to each data set's protocol defaults (the registry).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxattn.config import ATTENTIONS, WORD_ENCODERS
from jaxattn.data.sources import REGISTRY

HERE = Path(__file__).resolve().parent

# What each kind of data set trains with; (section, key) -> value.
SYNTHETIC = {
    "data": {"embeddings": "random"},
    "model": {"embed_dim": 64, "hidden_size": 64},
    "train": {"epochs": 4, "batch_size": 32, "patience": 2},  # quick: stops early
}
BINARY = {
    "data": {"embeddings": "glove-6b-50d"},
    "model": {"embed_dim": 50, "hidden_size": 128},
    "train": {"epochs": 8, "batch_size": 32},
}
NLI = {
    "data": {"embeddings": "glove-6b-50d"},
    "model": {"embed_dim": 50, "hidden_size": 128},
    "train": {"epochs": 25, "batch_size": 128},
}
QA = {
    "data": {"embeddings": "random"},
    "model": {"embed_dim": 50, "hidden_size": 128},
    "train": {"epochs": 100, "batch_size": 50},
}

# The Transformer encoder's settings replace hidden_size (which it does not read) in every config.
TRANSFORMER = {"layers": 2, "heads": 4, "width": 128, "ff_size": 256}
# Learned positions must cover the widest padded batch: lengths are padded to the buckets
# (16 ... 1024, then multiples of 1024). ERASER reviews reach 2,811 tokens, bAbI 3 stories 1,350.
MAX_POSITIONS = {"eraser_movies": 3072, "babi3": 2048}
# The Diversity LSTM's conicity weight (Mohankumar et al. 2020): 0.5, and 0.1 for SNLI.
DIVERSITY_WEIGHT = {"nli": 0.1}

COMMENTS = {
    "qa": "# bAbI per protocol: 100 epochs, batch 50, random 50-d embeddings. CPU time: one BiLSTM\n"
    "# epoch took ~2.5 min for task 1 (8,500 questions) and ~3.7 min for task 3 from the 1k file\n"
    "# (850 questions of ~300 tokens) on 2 shared cores, so 100 epochs take hours there (the\n"
    "# generated task 3 has 10x the questions); `--set train.epochs=10` for a quick run.\n",
    "nli": "# SNLI per protocol: 25 epochs, batch 128. Trains on 90% of SNLI dev here (no train file).\n",
}


def settings(name: str) -> dict[str, dict]:
    """The protocol's training settings for the registered data set ``name``."""
    if name in ("synthetic", "synthetic_aspects"):
        return SYNTHETIC
    return {"binary": BINARY, "multiclass": BINARY, "nli": NLI, "qa": QA}[REGISTRY[name].task]


def _value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def render(name: str, encoder: str, attention: str) -> str:
    """The TOML text of one config."""
    chosen = settings(name)
    model = {"encoder": encoder, "attention": attention, **chosen["model"]}
    if encoder == "transformer":
        del model["hidden_size"]
        model.update(TRANSFORMER)
        if name in MAX_POSITIONS:
            model["max_positions"] = MAX_POSITIONS[name]
    if encoder == "diversity_lstm":
        model["diversity_weight"] = DIVERSITY_WEIGHT.get(REGISTRY[name].task, 0.5)
    sections = {
        "data": {"name": name, **chosen["data"]},
        "model": model,
        "train": chosen["train"],
    }
    lines = [
        f"# {name} / {encoder} / {attention}: {REGISTRY[name].description}",
        "# Written by configs/generate.py; edit that script, not this file.",
    ]
    comment = "" if name in ("synthetic", "synthetic_aspects") else COMMENTS.get(
        REGISTRY[name].task, "")
    lines += comment.splitlines()
    for section, values in sections.items():
        lines += ["", f"[{section}]"] + [f"{key} = {_value(v)}" for key, v in values.items()]
    return "\n".join(lines) + "\n"


def all_configs() -> dict[str, str]:
    """File name -> TOML text for every registered data set x encoder x attention."""
    return {
        f"{name}_{encoder}_{attention}.toml": render(name, encoder, attention)
        for name in REGISTRY
        for encoder in WORD_ENCODERS
        for attention in ATTENTIONS
    }


def stale(directory: Path = HERE) -> list[str]:
    """Config files that are missing or differ from :func:`all_configs`."""
    return sorted(
        name
        for name, text in all_configs().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        print("\n".join(bad) if bad else "configs up to date")
        return 1 if bad else 0
    expected = all_configs()
    for name, text in expected.items():
        (HERE / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(expected)} configs to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
