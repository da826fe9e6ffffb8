"""Damaged and contested run directories through ``jaxattn``'s command line: each ends in one line
naming the file and what to do (exit status 2, no traceback), and changes nothing. The damaged
files go through ``jaxattn.cli.main`` in this process (no fresh Python and JAX per case; an
exception out of ``main`` is the traceback); the contested run needs two processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import cli_here, fresh_process_xla_flags

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--set", "data.name=synthetic", "--set", "data.limit_train=60", "--set", "model.encoder=average",
    "--set", "model.embed_dim=8", "--set", "model.hidden_size=8", "--set", "train.epochs=1",
    "--set", "train.buckets=[64]",
]


def _jaxattn(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = fresh_process_xla_flags()
    return subprocess.run([sys.executable, "-m", "jaxattn.cli", *argv], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _here(*argv: str, capfd=None) -> tuple[int, str]:
    """(exit status, stderr) of ``main(argv)`` in this process (tests/helpers.py ``cli_here``).
    The process's XLA_FLAGS (one CPU device) stay; every analyze here says ``--cpu-devices 1``."""
    return cli_here(argv, capfd)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run with a grad analysis and a second run of another shape."""
    root = tmp_path_factory.mktemp("runs")
    assert _here("train", *TINY, "--out", str(root / "run"), "--quiet") == (0, "")
    assert _here("analyze", "--run", str(root / "run"), "--only", "grad", "--limit", "8",
                 "--quiet", "--cpu-devices", "1") == (0, "")
    wider = [*TINY, "--set", "model.hidden_size=12"]
    assert _here("train", *wider, "--out", str(root / "wider"), "--quiet") == (0, "")
    return root


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


CASES = {
    "params-truncated": (lambda r: _truncate(r / "params.msgpack"), "analyze",
                         "params.msgpack: damaged"),
    "params-other-shape": (lambda r: shutil.copy(r.parent / "wider" / "params.msgpack",
                                                 r / "params.msgpack"), "analyze", "has shape"),
    "metrics-truncated": (lambda r: _truncate(r / "metrics.json"), "analyze",
                          "metrics.json: damaged JSON"),
    "data-json-garbage": (lambda r: (r / "data.json").write_text("[1, 2"), "analyze",
                          "data.json: damaged JSON"),
    "data-json-foreign": (lambda r: (r / "data.json").write_text("[1, 2]"), "analyze",
                          "data.json: not a jaxattn data description"),
    "stage-file-truncated": (lambda r: _truncate(r / "analysis" / "grad.npz"), "analyze",
                             "grad.npz: damaged result file"),
    "stage-file-random": (lambda r: (r / "analysis" / "grad.npz").write_bytes(os.urandom(300)),
                          "analyze", "grad.npz: damaged result file"),
    "checkpoint-truncated": (lambda r: _truncate(r / "checkpoint.msgpack"), "train",
                             "checkpoint.msgpack: damaged checkpoint"),
    "wp-stage-json-garbage": (lambda r: ((r / "wp").mkdir(), (r / "wp" / "uniform.json")
                                         .write_text("{")), "wp", "uniform.json: damaged JSON"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_run_file_is_one_line_and_changes_nothing(case, finished, tmp_path, capfd):
    damage, command, needle = CASES[case]
    shutil.copytree(finished / "run", tmp_path / "run")
    shutil.copytree(finished / "wider", tmp_path / "wider")
    run = tmp_path / "run"
    damage(run)
    before = _snapshot(tmp_path)
    if command == "train":  # more epochs: resume from the (damaged) checkpoint
        argv = ["train", *TINY, "--set", "train.epochs=2", "--out", str(run), "--quiet"]
    elif command == "wp":
        argv = ["wp", "--run", str(run), "--only", "uniform", "--quiet"]
    else:
        argv = ["analyze", "--run", str(run), "--only", "grad", "--limit", "8", "--quiet",
                "--cpu-devices", "1"]
    status, stderr = _here(*argv, capfd=capfd)
    assert "Traceback" not in stderr, stderr
    assert status == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"jaxattn {command}: error: "), stderr
    assert needle in lines[0], lines[0]
    assert _snapshot(tmp_path) == before


def test_a_second_command_on_a_held_run_is_refused(finished, tmp_path):
    from jaxattn.runtime.lock import run_lock

    shutil.copytree(finished / "run", tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom jaxattn.runtime.lock import run_lock\n"
         f"with run_lock({str(tmp_path / 'run')!r}, 'jaxattn analyze'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = _jaxattn("train", *TINY, "--set", "train.epochs=2", "--out",
                        str(tmp_path / "run"), "--quiet")
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"in use by pid {holder.pid}" in done.stderr and "jaxattn analyze" in done.stderr
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with run_lock(tmp_path / "run"):  # the killed holder's lock is gone
        pass
