"""Run-directory files: JSON is written strictly (no bare NaN or Infinity)."""

import json
import math

import numpy as np

from jaxattn.runs.files import write_json


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
