"""Several processes on JAX's own runtime: 2 CPU processes joined by ``jax.distributed`` on
localhost train the same parameters (to float tolerance) and write the same analysis arrays as
one process; the flags and variables that ask for it are checked."""

import ast
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxattn.cli import main
from jaxattn.runs.run import load_run
from jaxattn.runtime.distributed import (
    DistributedError,
    check_port_free,
    coordinator_timeout,
    settings,
)
from jaxattn.runtime.launch import launch, with_device_count
from jaxattn.runtime.lock import run_lock

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ["--set", "data.name=file", "--set",
            f"data.train_file={ROOT / 'examples' / 'data' / 'reviews.csv'}",
            "--set", "train.epochs=1", "--set", "model.embed_dim=16",
            "--set", "model.hidden_size=8", "--set", "train.batch_size=16", "--quiet"]


def _jaxattn(args, processes: int = 1, devices: int = 1) -> None:
    """``jaxattn ARGS`` as ``processes`` processes of ``devices`` CPU devices each, joined by
    jax.distributed when more than one (a single one runs without the flags)."""
    if processes == 1:
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "XLA_FLAGS": with_device_count(os.environ.get("XLA_FLAGS", ""), devices)}
        done = subprocess.run([sys.executable, "-m", "jaxattn.cli", *args], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return
    for code, out in launch(args, processes, devices_per_process=devices, timeout=300,
                            capture=True):
        assert code == 0, out[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-process run, two-process run) of one epoch of the same config."""
    tmp = tmp_path_factory.mktemp("distributed")
    assert main(["train", *SETTINGS, "--out", str(tmp / "one")]) == 0
    _jaxattn(["train", *SETTINGS, "--out", str(tmp / "two")], processes=2)
    return tmp / "one", tmp / "two"


def test_data_parallel_epoch_gives_the_same_parameters(runs):
    one, two = load_run(runs[0]), load_run(runs[1])
    a, b = jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(two.params)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert one.metrics["test"]["accuracy"] == pytest.approx(two.metrics["test"]["accuracy"])
    # Only process 0 wrote: no lock or temporary files left, the usual files present.
    assert sorted(p.name for p in runs[1].iterdir()) == sorted(p.name for p in runs[0].iterdir())


def test_two_processes_resume_a_run_as_one_process_does(runs, tmp_path):
    """One more epoch from the 2-process checkpoint, on 2 processes, as on one from its own."""
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(runs[0], one)
    shutil.copytree(runs[1], two)
    more = [a if a != "train.epochs=1" else "train.epochs=2" for a in SETTINGS]
    assert main(["train", *more, "--out", str(one)]) == 0
    _jaxattn(["train", *more, "--out", str(two)], processes=2)
    a, b = load_run(one), load_run(two)
    assert len(a.metrics["epochs"]) == len(b.metrics["epochs"]) == 2
    # The resumed epoch's training loss and dev scores (the selected params may be epoch 1's).
    second_a, second_b = a.metrics["epochs"][1], b.metrics["epochs"][1]
    assert second_a["loss"] == pytest.approx(second_b["loss"], rel=1e-5)
    assert second_a["dev"]["auc"] == pytest.approx(second_b["dev"]["auc"], abs=1e-6)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_analyze_on_two_processes_writes_the_same_arrays(runs, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    for dst in (single, multi):
        shutil.copytree(runs[0], dst, ignore=shutil.ignore_patterns("analysis"))
    args = ["analyze", "--limit", "6", "--only", "grad,loo,perm,adv", "--quiet"]
    # One process over 2 devices (the default on 2 cores), then 2 processes of one device each.
    _jaxattn([*args, "--run", str(single), "--cpu-devices", "2"], processes=1, devices=2)
    _jaxattn([*args, "--run", str(multi), "--cpu-devices", "1"], processes=2, devices=1)
    files = sorted(p.name for p in (single / "analysis").iterdir())
    assert files == sorted(p.name for p in (multi / "analysis").iterdir())
    stages = [f for f in files if f.endswith(".npz")]
    assert {"grad.npz", "loo.npz", "perm.npz", "adv.npz", "attention.npz"} <= set(stages)
    for name in stages:
        with np.load(single / "analysis" / name) as a, np.load(multi / "analysis" / name) as b:
            assert a.files == b.files
            for key in a.files:
                if key != "__meta__":
                    np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    # The tables name their run (in the commands of tests not run): the same up to that name.
    tables = {run: (run / "analysis" / "tables.md").read_text().replace(str(run), "RUN")
              for run in (single, multi)}
    assert tables[single] == tables[multi]


def test_settings_from_flags_or_environment():
    assert settings(environ={}) is None
    assert settings("h:1", 2, 1, environ={}) == ("h:1", 2, 1)
    env = {"JAX_COORDINATOR_ADDRESS": "node0:1234", "JAX_NUM_PROCESSES": "4",
           "JAX_PROCESS_ID": "3"}
    assert settings(environ=env) == ("node0:1234", 4, 3)
    with pytest.raises(DistributedError, match="give all three"):
        settings(num_processes=2, environ={})
    with pytest.raises(DistributedError, match="not in 0..1"):
        settings("h:1", 2, 2, environ={})
    with pytest.raises(DistributedError, match="JAX_PROCESS_ID"):
        settings(environ={**env, "JAX_PROCESS_ID": "x"})
    with pytest.raises(DistributedError, match="HOST:PORT"):
        settings("h", 2, 0, environ={})


def test_bad_flags_are_one_line(tmp_path, capsys):
    assert main(["analyze", "--run", str(tmp_path), "--num-processes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give all three" in err


_LISTENERS = '''
import argparse, sys
from jaxattn.runtime import distributed
parser = argparse.ArgumentParser()
distributed.add_arguments(parser)
args = parser.parse_args()
distributed.from_args(args)
port = int(args.coordinator.rsplit(":", 1)[1])
found = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
            found.add(address)
print("LISTEN", sorted(found))
distributed.barrier("listeners")
'''


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket tables")
def test_the_launched_coordinator_listens_on_loopback_only(tmp_path):
    script = tmp_path / "listeners.py"
    script.write_text(_LISTENERS)
    (code, out), (code1, out1) = launch([], 2, script=str(script), timeout=300, capture=True)
    assert code == 0 and code1 == 0, out[-3000:] + out1[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("LISTEN"))
    addresses = ast.literal_eval(line.split(" ", 1)[1])  # hex addresses, as /proc shows them
    # 127.0.0.1, ::1 and ::ffff:127.0.0.1 (JAX's default, every interface, is all zeros)
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    assert addresses and set(addresses) <= loopback, line


def test_coordinator_address_and_port_are_checked_before_jax_starts(capsys):
    for bad in ("localhost:http", "localhost:0", "localhost:70000", ":1234", "localhost:"):
        with pytest.raises(DistributedError, match="HOST:PORT"):
            settings(bad, 2, 0, environ={})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DistributedError, match=f"is another run using port {port}"):
            check_port_free(f"127.0.0.1:{port}", "--coordinator")
    assert main(["analyze", "--run", "x", "--coordinator", "localhost:http",
                 "--num-processes", "2", "--process-id", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HOST:PORT" in err


def _start(args, index: int, count: int, port: int, timeout: float = 5) -> subprocess.Popen:
    """``jaxattn ARGS`` as process ``index`` of ``count`` at ``localhost:port``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": with_device_count(os.environ.get("XLA_FLAGS", ""), 1)}
    flags = ["--coordinator", f"localhost:{port}", "--num-processes", str(count),
             "--process-id", str(index), "--coordinator-timeout", str(timeout)]
    return subprocess.Popen([sys.executable, "-m", "jaxattn.cli", *args, *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ended(proc: subprocess.Popen) -> tuple[int, list[str]]:
    out = proc.communicate(timeout=120)[0]
    return proc.returncode, out.splitlines()


def test_a_missing_process_0_is_one_line_within_the_timeout(tmp_path):
    started = time.monotonic()
    code, lines = _ended(_start(["analyze", "--run", str(tmp_path)], 1, 2, _free_port(), 3))
    assert code == 2 and len(lines) == 1, lines
    assert "no process 0 answered at localhost:" in lines[0] and "within 3 s" in lines[0]
    assert time.monotonic() - started < 60  # not JAX's five minutes


def test_processes_that_never_join_are_named_in_every_waiting_process(tmp_path):
    """3 processes asked for, 0 and 1 started: both end with the line naming process 2."""
    port = _free_port()
    procs = [_start(["analyze", "--run", str(tmp_path)], i, 3, port, 5) for i in (0, 1)]
    (code0, lines0), (code1, lines1) = map(_ended, procs)
    assert code0 == code1 == 2 and len(lines0) == len(lines1) == 1, lines0 + lines1
    assert "process 2 of 3 did not join process 0" in lines0[0] and "within 5 s" in lines0[0]
    assert lines1 == lines0


def test_mismatched_process_counts_and_twice_started_ids_are_refused(tmp_path):
    port = _free_port()
    procs = [_start(["analyze", "--run", str(tmp_path)], 0, 2, port),
             _start(["analyze", "--run", str(tmp_path)], 1, 3, port)]
    (code0, lines0), (code1, lines1) = map(_ended, procs)
    assert code0 == code1 == 2 and lines0 == lines1, lines0 + lines1
    assert "process 1 was started with --num-processes 3, process 0 with 2" in lines0[0]
    port = _free_port()
    procs = [_start(["analyze", "--run", str(tmp_path)], i, 3, port) for i in (0, 1, 1)]
    results = [_ended(p) for p in procs]
    assert all(code == 2 and len(lines) == 1 for code, lines in results), results
    assert "two processes were started as process 1" in results[0][1][0]


def test_coordinator_timeout_is_checked():
    assert coordinator_timeout(environ={}) == 60
    assert coordinator_timeout(environ={"JAXATTN_COORDINATOR_TIMEOUT": "2.5"}) == 2.5
    assert coordinator_timeout(7, environ={"JAXATTN_COORDINATOR_TIMEOUT": "2.5"}) == 7
    with pytest.raises(DistributedError, match="JAXATTN_COORDINATOR_TIMEOUT: 'x' is not"):
        coordinator_timeout(environ={"JAXATTN_COORDINATOR_TIMEOUT": "x"})
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(DistributedError, match="--coordinator-timeout"):
            coordinator_timeout(bad, environ={})


def test_cluster_auto_outside_a_cluster_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "TPU_", "KUBERNETES_", "JAX_"))}
    done = subprocess.run([sys.executable, "-m", "jaxattn.cli", "analyze", "--run",
                           str(tmp_path), "--cluster-auto"], env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.count("\n") == 1 and "no cluster detected" in done.stderr, done.stderr


def test_a_run_locked_by_another_command_ends_every_process_in_one_line(tmp_path):
    """Process 0 is refused the run's lock; process 1 gets the same line, not a barrier's
    deadline."""
    out = tmp_path / "run"
    with run_lock(out, "jaxattn test"):
        results = launch(["train", *SETTINGS, "--out", str(out)], 2, timeout=300, capture=True)
    for code, text in results:
        lines = text.splitlines()
        assert code == 2 and len(lines) == 1, text[-3000:]
        assert "in use by pid" in lines[0] and "jaxattn test" in lines[0]
    assert results[0][1] == results[1][1]


def test_launch_flags_are_one_line(tmp_path):
    for flags, words in ((["-n", "0"], "-n/--processes: 0"), (["-n", "x"], "invalid int"),
                         (["--script", str(tmp_path / "none.py")], "--script"),
                         (["--devices-per-process", "0"], "--devices-per-process")):
        done = subprocess.run([sys.executable, "-m", "jaxattn.runtime.launch", *flags, "--",
                               "analyze"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert words in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_launched_processes_keep_the_callers_other_xla_flags():
    flags = "--xla_dump_to=/tmp/d --xla_force_host_platform_device_count=4 --xla_cpu_ftz=true"
    assert with_device_count(flags, 1).split() == [
        "--xla_dump_to=/tmp/d", "--xla_cpu_ftz=true", "--xla_force_host_platform_device_count=1"]
    assert with_device_count("", 2) == "--xla_force_host_platform_device_count=2"
