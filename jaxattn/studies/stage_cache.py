"""Where a stage's results are kept and when they can be reused.

The cache keys every result on everything it depends on: the stage and its code version, the
options it reads, a digest of the parameters, the split, the jaxattn version and, per row, a
digest of the inputs of that row (token ids, query, candidates). A stage is reused from any stage
file of the same key whose rows cover the requested rows with the same digests (a fuller earlier
analysis serves a narrower one); anything else is recomputed. A stage file is one ``.npz`` of
plain arrays plus a JSON ``__meta__`` entry, read without pickle and written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxattn.core.errors import RunError
from jaxattn.core.protocol import Params
from jaxattn.core.version import __version__
from jaxattn.data.batching import EncodedSplit
from jaxattn.runtime.files import write_atomic
from jaxattn.studies.stage import Stage

CACHE_FORMAT = 2  # bump when the layout of stage files changes


def params_digest(params: Params) -> str:
    """A digest of a params pytree's paths, dtypes, shapes and values (key order does not matter)."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        value = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()[:16]


def row_digests(split: EncodedSplit, indices: Iterable[int]) -> np.ndarray:
    """<U16>[N] a digest of each row's model inputs (token ids, query ids, candidates)."""
    out = []
    for i in indices:
        h = hashlib.blake2b(np.asarray(split.tokens[i], np.int32).tobytes(), digest_size=8)
        if split.queries is not None:
            h.update(b"|q|" + np.asarray(split.queries[i], np.int32).tobytes())
        if split.candidates is not None:
            h.update(b"|c|" + np.asarray(split.candidates[i], bool).tobytes())
        out.append(h.hexdigest())
    return np.asarray(out, dtype="<U16")


def stage_key(
    stage: Stage, options: Any, params: str, split: str, inputs: dict | None = None
) -> str:
    """What a stage's results depend on besides the rows: code, options, parameters, split, and
    the keys of the stages whose results it reads (``inputs``, name -> key)."""
    described = {
        "stage": stage.name,
        "version": stage.version,
        "format": CACHE_FORMAT,
        "jaxattn": __version__,
        "options": {k: option_value(getattr(options, k)) for k in stage.options},
        "params": params,
        "split": split,
        **({"inputs": inputs} if inputs else {}),
        **({"settings": [[k, option_value(v)] for k, v in stage.settings]} if stage.settings else {}),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def option_value(value):
    """An option as it is written in a key or a stage file's metadata: tuples become lists."""
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------------
# Stage files


def save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.asarray(json.dumps(meta)), **arrays)
    write_atomic(path, buf.getvalue())


def load_stage(path: str | Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and metadata of a stage file, None if absent; a damaged file is a RunError."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
            meta = json.loads(str(data["__meta__"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise RunError(
            f"{path}: damaged result file ({type(err).__name__}); delete it to recompute"
        ) from None
    return arrays, meta


def fit_tokens(value: np.ndarray, length: int) -> np.ndarray:
    """Cuts or zero-pads the last (token) axis to ``length``."""
    value = value[..., :length]
    pad = length - value.shape[-1]
    if pad:
        value = np.pad(value, [(0, 0)] * (value.ndim - 1) + [(0, pad)])
    return value


def _take_rows(
    stage: Stage, arrays: dict, meta: dict, index: np.ndarray, digests: np.ndarray, length: int
) -> dict | None:
    """The rows ``index`` (with ``digests``) of a stage file's arrays, None unless all are there."""
    have = {(int(i), str(d)) for i, d in zip(arrays["index"], arrays["row_digest"])}
    if not all((int(i), str(d)) in have for i, d in zip(index, digests)):
        return None
    where = {int(i): r for r, i in enumerate(arrays["index"])}
    rows = np.asarray([where[int(i)] for i in index])
    out = {}
    for key, value in arrays.items():
        value = value[rows]
        out[key] = fit_tokens(value, length) if key in stage.token_keys else value
    return out


def find_cached(
    stage: Stage,
    key: str,
    places: Iterable[Path],
    index: np.ndarray,
    digests: np.ndarray,
    length: int,
) -> tuple[dict, dict, Path] | None:
    """The first stage file among ``places`` with ``key`` whose rows cover ``index``."""
    for path in places:
        loaded = load_stage(path)
        if loaded is None or loaded[1].get("key") != key or "row_digest" not in loaded[0]:
            continue
        rows = _take_rows(stage, *loaded, index, digests, length)
        if rows is not None:
            return rows, loaded[1], path
    return None
