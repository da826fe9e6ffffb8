"""Atomic, strict files: every result is written to a temporary name and renamed into place.

An interrupted write never leaves a half-written file (a temporary file left by a killed process,
``.<name>.<random>.tmp``, is removed when the directory is next locked), JSON is strict (no bare
NaN: non-finite numbers become null) and files get the usual permissions (``0666`` less the umask).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from jaxattn.core.errors import RunError, read_text
from jaxattn.runtime.distributed import barrier, is_writer

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory: Path) -> None:
    """Deletes the temporary files of :func:`write_atomic` that a killed process left behind."""
    for path in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Writes ``data`` to ``path`` via a temporary file in the same directory and a rename.

    Under ``jax.distributed`` every process runs the same program: process 0 writes once all
    processes are at this write (none is still deciding from the folder as it was) and they all
    wait until it has, so the file is there for every one of them to read back.
    """
    path = Path(path)
    barrier(f"before writing {path.name}")
    if is_writer():
        _write_file(path, data)
    barrier(f"wrote {path.name}")


def _write_file(path: Path, data: bytes | str) -> None:
    try:
        _write_via_temporary(path, data)
    except OSError as err:
        # The message names the file the caller asked for, never the temporary one (or none,
        # as a full disk's write error has no file name).
        named = err.filename
        if named is None or str(named).endswith(TEMP_SUFFIX):
            named = str(path)
        raise type(err)(err.errno, err.strerror or str(err), named) from None


def _write_via_temporary(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json_value(obj: Any) -> Any:
    """``obj`` with numpy values made plain and non-finite floats replaced by None, recursively."""
    if isinstance(obj, dict):
        return {str(k): strict_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_value(v) for v in obj]
    if isinstance(obj, np.ndarray) or (
        hasattr(obj, "__array__") and not isinstance(obj, np.generic)
    ):  # numpy and JAX arrays
        return strict_json_value(np.asarray(obj).tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def json_text(obj: Any) -> str:
    """Strict JSON (RFC 8259: no NaN or Infinity) of ``obj``, indented, with a final newline."""
    return json.dumps(strict_json_value(obj), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json_text(obj))


def read_json(path: str | Path) -> Any:
    """A JSON file written by jaxattn; a missing or damaged one is a one-line RunError."""

    text = read_text(path, error=RunError, what="result file")
    try:
        return json.loads(text)
    except ValueError as err:
        raise RunError(f"{path}: damaged JSON ({err}); delete it to recompute") from None
