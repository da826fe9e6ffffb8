"""Run-directory files: JSON is written strictly (no bare NaN or Infinity)."""

import errno
import json
import math

import numpy as np
import pytest

from jaxattn.runtime.files import write_json


def _strict_loads(text):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_write_json_turns_non_finite_numbers_into_null(tmp_path):
    path = tmp_path / "m.json"
    obj = {
        "nan": math.nan,
        "inf": [1.0, -math.inf],
        "np": {"scalar": np.float32("nan"), "array": np.array([[0.5, np.inf]]), "int": np.int64(3)},
        np.int64(7): (np.float64(2.0), np.bool_(True), "text", None),
    }
    write_json(path, obj)
    back = _strict_loads(path.read_text())
    assert back == {
        "nan": None,
        "inf": [1.0, None],
        "np": {"scalar": None, "array": [[0.5, None]], "int": 3},
        "7": [2.0, True, "text", None],
    }


def test_atomic_files_get_ordinary_permissions_and_stale_temporaries_are_removed(tmp_path):
    import os

    from jaxattn.runtime.files import write_atomic
    from jaxattn.runtime.lock import run_lock

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    stale = tmp_path / ".params.msgpack.abc123.tmp"  # what a killed write leaves
    stale.write_bytes(b"half")
    with run_lock(tmp_path):
        pass
    assert not stale.exists() and (tmp_path / "a.json").exists()


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_failed_write_names_the_path_asked_for(tmp_path, monkeypatch, where):
    from jaxattn.cli.commands import error_line
    from jaxattn.runtime import files

    def full(*args):
        if where == "replace":  # os.replace names both the temporary file and the target
            raise OSError(errno.ENOSPC, "No space left on device", args[0], None, args[1])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, where, full)
    target = tmp_path / "out" / "attributions.jsonl"
    with pytest.raises(OSError) as err:
        files.write_atomic(target, "{}\n")
    assert err.value.errno == errno.ENOSPC
    assert error_line(err.value) == f"{target}: no space left on device"
    assert list((tmp_path / "out").iterdir()) == []  # no temporary file left behind
