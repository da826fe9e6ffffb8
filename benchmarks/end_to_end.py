"""What a user waits for: ``jaxattn analyze`` end to end, cold and warm, per stage compile/compute.

    python benchmarks/end_to_end.py --run runs/sst2_bilstm                 # grad,loo,perm,adv
    python benchmarks/end_to_end.py --run runs/sst2_bilstm --limit 200 --only grad,perm
    python benchmarks/end_to_end.py --run runs/sst2_bilstm --jaxattn /path/to/other/checkout

Each pass runs the command in a fresh process on a copy of the run folder without its analysis
(so every stage computes):
- cold: an empty persistent compilation cache (``--compilation-cache`` set to a new folder);
- warm: the same cache folder again, filled by the cold pass.
It prints the wall time of each pass and, from the stage files' metadata, every stage's seconds
split into compile and compute with the programs compiled (from the cache in the warm pass).
``--compile-threads 0`` turns off the overlapped compiling of the bucket programs
(``jaxattn.studies.overlap``). ``--jaxattn`` runs another checkout's code (``PYTHONPATH``) for a side-by-side comparison; a
checkout without the cache option gets ``JAX_COMPILATION_CACHE_DIR`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stage_metas(folder: Path) -> dict[str, dict]:
    """stage -> the metadata of its result file in an analysis folder."""
    metas = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if "__meta__" in data.files:
                meta = json.loads(str(data["__meta__"]))
                if "stage" in meta:
                    metas[meta["stage"]] = meta
    return metas


def one_pass(run: Path, work: Path, cache: Path, checkout: Path, only: str, limit: int | None,
             cpu_devices: int, compile_threads: int | None = None) -> tuple[float, dict]:
    """(wall seconds, stage metadata) of one ``jaxattn analyze`` in a fresh process."""
    copy = work / "run"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis", "wp"))
    cmd = [sys.executable, "-m", "jaxattn.cli", "analyze", "--run", str(copy), "--only", only,
           "--quiet", "--cpu-devices", str(cpu_devices)]
    if limit:
        cmd += ["--limit", str(limit)]
    env = {**os.environ, "PYTHONPATH": str(checkout), "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAXATTN_COMPILATION_CACHE": str(cache)}
    if compile_threads is not None:
        env["JAXATTN_COMPILE_THREADS"] = str(compile_threads)
    start = time.perf_counter()
    # In the checkout's folder: ``python -m`` puts the current folder first on the path.
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=checkout)
    return time.perf_counter() - start, stage_metas(copy / "analysis")


def show(label: str, wall: float, metas: dict, n: int | None) -> None:
    print(f"\n{label}: {wall:.1f} s wall")
    print("| stage | seconds | compile s | compute s | programs | from cache | instances/s |")
    print("|---|---|---|---|---|---|---|")
    for name, m in metas.items():
        cells = [format(m[k], f) if k in m else "-" for k, f in (
            ("compile_seconds", ".1f"), ("compute_seconds", ".1f"), ("programs", "d"),
            ("cache_hits", "d"))]
        rate = n / m["seconds"] if n else float("nan")
        print(f"| {name} | {m['seconds']:.1f} | {' | '.join(cells)} | {rate:.0f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run folder")
    parser.add_argument("--only", default="grad,loo,perm,adv")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cpu-devices", type=int, default=0)
    parser.add_argument("--jaxattn", type=Path, default=ROOT, help="checkout whose code runs")
    parser.add_argument("--warm", type=int, default=1, help="warm passes after the cold one")
    parser.add_argument("--compile-threads", type=int, default=None,
                        help="JAXATTN_COMPILE_THREADS for the runs (0: no overlapped compiling)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jaxattn_e2e_") as tmp:
        work, cache = Path(tmp), Path(tmp) / "cache"
        for i in range(1 + args.warm):
            wall, metas = one_pass(args.run, work, cache, args.jaxattn, args.only, args.limit,
                                   args.cpu_devices, args.compile_threads)
            n = args.limit
            if n is None and metas:
                n = len(json.loads((work / "run" / "analysis" / "request.json").read_text())
                        ["index"])
            show("cold (empty compilation cache)" if i == 0 else f"warm #{i}", wall, metas, n)


if __name__ == "__main__":
    main()
