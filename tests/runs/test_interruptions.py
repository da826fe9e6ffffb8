"""``kill -9`` in the middle of train, analyze and wp, then the same command again: the results
equal an uninterrupted run's (parameters byte for byte, arrays exactly).

Only the killed command runs in a process of its own; the uninterrupted run and the resuming
command run here (:func:`tests.helpers.cli_here`), which spares a start of Python and JAX and a
compilation of every program per command: the two share this process's compiled programs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cli_here, fresh_process_xla_flags

ROOT = Path(__file__).resolve().parents[2]
CONFIG = [
    "--set", "data.name=synthetic", "--set", "data.limit_train=400", "--set",
    "model.encoder=average", "--set", "model.embed_dim=16", "--set", "model.hidden_size=8",
    "--set", "train.epochs=4", "--set", "train.buckets=[64]",
]


def _command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "jaxattn.cli", *argv, "--quiet"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = fresh_process_xla_flags()
    return env


def _run(*argv: str) -> None:
    """``jaxattn argv`` run to its end in this process."""
    status, err = cli_here([*argv, "--quiet"])
    assert status == 0, err


def _kill_when(argv: list[str], ready, timeout: float = 300) -> bool:
    """Starts ``jaxattn argv`` and kills it (SIGKILL) as soon as ``ready()``; whether it did."""
    proc = subprocess.Popen(_command(*argv), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < timeout:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _arrays(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k != "__meta__"}


def _assert_same_arrays(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    assert x.keys() == y.keys()
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=f"{a.name}:{key}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with its analysis and a W&P uniform + seeds stage."""
    root = tmp_path_factory.mktemp("reference")
    _run("train", *CONFIG, "--out", str(root / "run"))
    return root


def test_train_killed_after_an_epoch_resumes_to_the_same_bytes(reference, tmp_path):
    run = tmp_path / "run"
    killed = _kill_when(["train", *CONFIG, "--out", str(run)],
                        lambda: (run / "checkpoint.msgpack").exists())
    assert killed and not (run / "metrics.json").exists(), "the run ended before the kill"
    _run("train", *CONFIG, "--out", str(run))
    ref = reference / "run"
    assert (run / "params.msgpack").read_bytes() == (ref / "params.msgpack").read_bytes()
    assert not list(run.glob(".*.tmp")) and not (run / ".jaxattn.lock").exists()


def test_analyze_killed_after_a_stage_resumes_to_the_same_arrays(reference, tmp_path):
    fresh = tmp_path / "fresh"
    shutil.copytree(reference / "run", fresh, ignore=shutil.ignore_patterns("analysis", "wp"))
    killed_run = tmp_path / "killed"
    shutil.copytree(fresh, killed_run)
    argv = ["--only", "grad,loo,perm", "--limit", "40", "--cpu-devices", "1"]
    _run("analyze", "--run", str(fresh), *argv)
    killed = _kill_when(["analyze", "--run", str(killed_run), *argv],
                        lambda: (killed_run / "analysis" / "grad.npz").exists())
    assert killed and not (killed_run / "analysis" / "index.html").exists()
    _run("analyze", "--run", str(killed_run), *argv)
    for stage in ("attention", "grad", "loo", "perm"):
        _assert_same_arrays(fresh / "analysis" / f"{stage}.npz",
                            killed_run / "analysis" / f"{stage}.npz")


def test_wp_killed_during_a_stage_resumes_to_the_same_results(reference, tmp_path):
    fresh = tmp_path / "fresh"
    shutil.copytree(reference / "run", fresh, ignore=shutil.ignore_patterns("analysis", "wp"))
    killed_run = tmp_path / "killed"
    shutil.copytree(fresh, killed_run)
    argv = ["--only", "uniform,seeds", "--seeds", "2"]
    _run("wp", "--run", str(fresh), *argv)
    killed = _kill_when(["wp", "--run", str(killed_run), *argv],
                        lambda: (killed_run / "wp" / "uniform.json").exists())
    assert killed and not (killed_run / "wp" / "seeds.json").exists()
    _run("wp", "--run", str(killed_run), *argv)
    _assert_same_arrays(fresh / "wp" / "seeds.npz", killed_run / "wp" / "seeds.npz")
    for sub in ("uniform", "seeds/seed_1", "seeds/seed_2"):
        a, b = fresh / "wp" / "runs" / sub, killed_run / "wp" / "runs" / sub
        assert (a / "params.msgpack").read_bytes() == (b / "params.msgpack").read_bytes(), sub
