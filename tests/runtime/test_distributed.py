"""Several processes on JAX's own runtime: 2 CPU processes joined by ``jax.distributed`` on
localhost train the same parameters (to float tolerance) and write the same analysis arrays as
one process; the flags and variables that ask for it are checked."""

import ast
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxattn.cli import main
from jaxattn.runs.run import load_run
from jaxattn.runtime.distributed import DistributedError, check_port_free, settings
from jaxattn.runtime.launch import launch

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
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
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
