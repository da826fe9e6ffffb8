"""The stage cache's keys and files: what a key depends on, which rows a file can serve, and a
damaged file named in one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxattn.core.errors import RunError
from jaxattn.data.batching import EncodedSplit
from jaxattn.studies.stage import Stage
from jaxattn.studies.stage_cache import (
    find_cached,
    fit_tokens,
    load_stage,
    params_digest,
    row_digests,
    save_npz,
    stage_key,
)

STAGE = Stage(name="probe", token_keys=("scores",), options=("steps",))


@dataclasses.dataclass
class Options:
    steps: int = 4
    unread: int = 0


def _split(rows):
    return EncodedSplit(tokens=[np.asarray(r, np.int32) for r in rows],
                        labels=np.zeros(len(rows), np.int32))


def test_params_digest_follows_values_not_key_order():
    a = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    b = {"b": np.zeros(3, np.float32), "w": np.ones((2, 3), np.float32)}
    assert params_digest(a) == params_digest(b)
    changed = {**a, "b": np.asarray([0, 0, 1e-7], np.float32)}
    assert params_digest(changed) != params_digest(a)
    assert params_digest({**a, "w": a["w"].astype(np.float64)}) != params_digest(a)


def test_row_digests_change_with_the_row_alone():
    split = _split([[2, 5, 6, 3], [2, 7, 3]])
    first = row_digests(split, [0, 1])
    other = _split([[2, 5, 6, 3], [2, 8, 3]])
    second = row_digests(other, [0, 1])
    assert first[0] == second[0] and first[1] != second[1]


def test_stage_key_reads_the_stage_s_options_only():
    key = stage_key(STAGE, Options(), "p", "test")
    assert key == stage_key(STAGE, Options(unread=9), "p", "test")
    assert key != stage_key(STAGE, Options(steps=5), "p", "test")
    assert key != stage_key(STAGE, Options(), "q", "test")
    assert key != stage_key(STAGE, Options(), "p", "dev")
    assert key != stage_key(dataclasses.replace(STAGE, version=2), Options(), "p", "test")
    assert key != stage_key(STAGE, Options(), "p", "test", inputs={"loo": "abc"})


def test_fit_tokens_cuts_and_pads_the_last_axis():
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(fit_tokens(value, 2), [[0, 1], [3, 4]])
    np.testing.assert_array_equal(fit_tokens(value, 4), [[0, 1, 2, 0], [3, 4, 5, 0]])


def test_a_file_serves_the_rows_it_holds_with_their_digests(tmp_path):
    path = tmp_path / "probe.npz"
    digests = np.asarray(["a", "b", "c"], "<U16")
    arrays = {"index": np.asarray([4, 7, 9]), "row_digest": digests,
              "scores": np.arange(9, dtype=np.float32).reshape(3, 3), "flip": np.asarray([1, 0, 1])}
    save_npz(path, arrays, {"key": "k1"})
    loaded, meta = load_stage(path)
    assert meta == {"key": "k1"} and set(loaded) == set(arrays)

    rows, _, source = find_cached(STAGE, "k1", [tmp_path / "absent.npz", path],
                                  np.asarray([9, 4]), np.asarray(["c", "a"]), 4)
    assert source == path
    np.testing.assert_array_equal(rows["scores"], [[6, 7, 8, 0], [0, 1, 2, 0]])  # fitted to 4
    np.testing.assert_array_equal(rows["flip"], [1, 1])  # not a token key: as stored
    # Another key, a row it lacks, or a row whose inputs changed: not served.
    assert find_cached(STAGE, "k2", [path], np.asarray([4]), np.asarray(["a"]), 3) is None
    assert find_cached(STAGE, "k1", [path], np.asarray([4, 5]), np.asarray(["a", "x"]), 3) is None
    assert find_cached(STAGE, "k1", [path], np.asarray([4]), np.asarray(["z"]), 3) is None


def test_a_damaged_file_is_one_error_naming_it(tmp_path):
    path = tmp_path / "probe.npz"
    assert load_stage(path) is None
    path.write_bytes(b"not a zip")
    with pytest.raises(RunError, match=r"probe\.npz: damaged result file"):
        load_stage(path)
    assert path.read_bytes() == b"not a zip"  # left as it was
