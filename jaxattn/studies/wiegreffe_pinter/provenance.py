"""What every W&P result depends on beyond its stage's options: the base model and its data.

``RUN/wp/base.json`` records a digest of the base run's parameters and of every row of its data
before the suite's first result is written. A later ``wp`` on a retrained base or changed data is refused with one
line, rather than reusing stages and sub-runs that belong to the old ones (or deleting them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jaxattn.core.errors import RunError
from jaxattn.core.protocol import Params
from jaxattn.data.prepare import Prepared
from jaxattn.runtime.files import read_json, write_json
from jaxattn.studies.stage_cache import params_digest, row_digests


def base_key(params: Params, data: Prepared) -> dict:
    """Digests of the base model's parameters and of the content of every row of its data."""
    h = hashlib.sha256()
    for name in sorted(data.splits):
        split = data.splits[name]
        h.update(name.encode() + "".join(row_digests(split, range(len(split)))).encode())
    return {"params": params_digest(params), "data": h.hexdigest()[:16]}


def check_base(out: Path, params: Params, data: Prepared) -> dict:
    """The key of ``params`` and ``data``; a RunError if the ``wp`` folder ``out`` was made for
    another base model or data."""
    path = out / "base.json"
    key = base_key(params, data)
    if path.exists():
        old = read_json(path)
        if old != key:
            changed = " and ".join(k for k in ("params", "data") if old.get(k) != key[k])
            raise RunError(
                f"{out}: its results belong to another base model or data (the {changed} "
                "changed since); move that folder aside to run the suite again"
            )
    return key


def record_base(out: Path, key: dict) -> None:
    """Writes ``out/base.json`` unless it is there (:func:`check_base` vouched for it)."""
    if not (out / "base.json").exists():
        write_json(out / "base.json", key)
