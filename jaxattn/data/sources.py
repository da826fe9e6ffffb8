"""The data set registry: every data set by name, with its protocol defaults and its loader.

A loader takes the data directory (or None) and returns a :class:`Dataset`, or raises
:class:`DataError` naming what is missing. Real data comes from files in the data directory
(``--data-dir``, else ``$JAXATTN_DATA``, else a ``shared/data`` folder beside the checkout), from
registry packages, or from the project's generators; tensorflow-datasets is the fallback where a
loader supports it and the files are absent.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from jaxattn.data.dataset import DataError, Dataset
from jaxattn.data.generators import make_synthetic

Loader = Callable[[Path | None], Dataset]


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A registered data set.

    Attributes:
      loader: builds the :class:`Dataset` (see module docstring).
      min_df, min_length, max_length: the protocol's vocabulary and length filters (max 0 = none).
      description: one line for ``jaxattn data list``.
      pretokenized: whether the source text is already tokenised (split on whitespace only).
    """

    loader: Loader
    min_df: int = 1
    min_length: int = 1
    max_length: int = 0
    description: str = ""


REGISTRY: dict[str, SourceSpec] = {}


def register(name: str, spec: SourceSpec) -> None:
    REGISTRY[name] = spec


def data_dir_candidates(explicit: str | Path | None = None) -> list[Path]:
    """Where data files are looked for, in order."""
    if explicit:
        return [Path(explicit)]
    out = []
    if os.environ.get("JAXATTN_DATA"):
        out.append(Path(os.environ["JAXATTN_DATA"]))
    here = Path(__file__).resolve().parents[2]  # the checkout holding jaxattn/
    out += [Path.cwd() / "../shared/data", here / "../shared/data", here / "shared/data"]
    return out


def resolve_data_dir(explicit: str | Path | None = None) -> Path | None:
    """The first existing data directory, or None (explicit directories must exist)."""
    if explicit and not Path(explicit).is_dir():
        raise DataError(f"data directory {explicit} does not exist")
    for cand in data_dir_candidates(explicit):
        if cand.is_dir():
            return cand.resolve()
    return None


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Loads the data set registered under ``name``."""
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].loader(resolve_data_dir(data_dir))


register(
    "synthetic",
    SourceSpec(
        loader=lambda data_dir: make_synthetic(),
        description="generated binary task with planted rationale words (3000/500/1000)",
    ),
)
