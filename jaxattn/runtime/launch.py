"""Several ``jaxattn`` processes on this machine, joined by ``jax.distributed``.

    python -m jaxattn.runtime.launch -n 2 -- analyze --run runs/sst2_bilstm
    python -m jaxattn.runtime.launch -n 2 --script experiments/wiegreffe_pinter.py -- --out runs/wp

starts N copies of the command, each with ``--coordinator localhost:PORT`` (a free port),
``--num-processes N`` and its ``--process-id``, and one CPU device each (``XLA_FLAGS``), waits
for all, and exits with the first non-zero status. Process 0's output is shown; the others' go
to ``--logs`` (default: discarded). On a cluster, start the processes with the cluster's own
launcher instead (README: "Several processes and hosts").
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

from jaxattn.runtime.devices import COUNT_FLAG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def without_device_count(flags: str) -> str:
    """``XLA_FLAGS`` ``flags`` less the CPU device count, every other flag kept in order."""
    return " ".join(f for f in flags.split() if not f.startswith(COUNT_FLAG))


def with_device_count(flags: str, count: int) -> str:
    """``XLA_FLAGS`` ``flags`` with the CPU device count set to ``count``: the caller's other
    flags (a dump folder, an optimisation level) reach the launched processes unchanged."""
    return f"{without_device_count(flags)} {COUNT_FLAG}={count}".lstrip()


def launch(args: list[str], processes: int, script: str | None = None,
           devices_per_process: int = 1, logs: Path | None = None, timeout: float | None = None,
           capture: bool = False) -> list[tuple[int, str]]:
    """Runs ``jaxattn ARGS`` (or ``python SCRIPT ARGS``) as ``processes`` joined processes;
    returns each one's (exit status, output; output only when ``capture``)."""
    port = free_port()
    # The processes import the same jaxattn as this one (a checkout, not another install).
    here = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path,
           "XLA_FLAGS": with_device_count(os.environ.get("XLA_FLAGS", ""), devices_per_process)}
    program = [script] if script else ["-m", "jaxattn.cli"]
    procs = []
    for i in range(processes):
        flags = ["--coordinator", f"localhost:{port}", "--num-processes", str(processes),
                 "--process-id", str(i)]
        if capture:
            out = subprocess.PIPE
        elif i == 0:
            out = None
        elif logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            out = open(logs / f"process{i}.log", "w")  # noqa: SIM115 (closed with the process)
        else:
            out = subprocess.DEVNULL
        procs.append(subprocess.Popen([sys.executable, *program, *args, *flags], env=env,
                                      stdout=out, stderr=subprocess.STDOUT if out else None,
                                      text=True))
    results = []
    for p in procs:
        try:
            text = p.communicate(timeout=timeout)[0] or ""
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append((p.returncode, text))
    return results


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (as ``jaxattn``'s own)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m jaxattn.runtime.launch", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--processes", type=int, default=2)
    parser.add_argument("--script", default=None, help="a Python script instead of jaxattn")
    parser.add_argument("--devices-per-process", type=int, default=1)
    parser.add_argument("--logs", type=Path, default=None, help="folder for processes 1.. output")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the command's arguments")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if ns.processes < 1:
        parser.error(f"-n/--processes: {ns.processes} is not a process count (1 or more)")
    if ns.devices_per_process < 1:
        parser.error(f"--devices-per-process: {ns.devices_per_process} is not 1 or more")
    if ns.script is not None and not Path(ns.script).is_file():
        parser.error(f"--script: {ns.script}: no such file")
    codes = [code for code, _ in launch(args, ns.processes, ns.script, ns.devices_per_process,
                                        ns.logs)]
    return next((c for c in codes if c), 0)


if __name__ == "__main__":
    sys.exit(main())
