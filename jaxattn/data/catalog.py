"""What data is available here: every registered data set loaded and summarised (``jaxattn data list``).

Sizes are counted after the protocol's length filter, i.e. what training with the data set's
defaults would use. Nothing is cached: each call loads every data set it describes afresh.
"""

from __future__ import annotations

from pathlib import Path

from jaxattn.data.dataset import SPLITS, DataError
from jaxattn.data.prepare import filter_by_length
from jaxattn.data.sources import REGISTRY, load_dataset


def describe_dataset(name: str, data_dir: str | Path | None = None) -> dict:
    """One data set's summary.

    Returns:
      ``{name, task, available, sizes {train, dev, test}, source, notes, error, description}``;
      when the data set cannot be loaded, ``available`` is False, ``error`` says why and
      ``sizes`` and ``source`` are None.
    """
    spec = REGISTRY.get(name)
    row = {
        "name": name,
        "task": spec.task if spec else "?",
        "available": False,
        "sizes": None,
        "source": None,
        "notes": [],
        "error": None,
        "description": spec.description if spec else "",
    }
    try:
        dataset = load_dataset(name, data_dir)
    except DataError as err:
        row["error"] = str(err)
        return row
    row.update(
        task=dataset.task,
        available=True,
        sizes={
            split: len(
                filter_by_length(dataset.splits.get(split, []), spec.min_length, spec.max_length)
            )
            for split in SPLITS
        },
        source=dataset.source,
        notes=list(dataset.notes),
    )
    return row


def describe_datasets(
    data_dir: str | Path | None = None, names: list[str] | None = None
) -> list[dict]:
    """Summaries of ``names`` (default: every registered data set, in registration order)."""
    return [describe_dataset(name, data_dir) for name in (names or list(REGISTRY))]
