"""The persistent compilation cache: where it lives, off, and a second process compiling nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

from jaxattn.cli.commands import build_parser
from jaxattn.runtime.compile_cache import ENV_VAR, cache_dir_setting, default_cache_dir

ROOT = Path(__file__).resolve().parents[2]

# Compiles two programs (one with two shapes) and prints the compile counts seen.
SCRIPT = """
import json, sys
from jaxattn.runtime.compile_cache import enable_compilation_cache
folder = enable_compilation_cache(sys.argv[1] if len(sys.argv) > 1 else None)
import jax, jax.numpy as jnp
from jaxattn.runtime.compile_stats import CompileCounter
with CompileCounter() as counted:
    f = jax.jit(lambda x: jnp.tanh(x) @ x.T)
    for n in (3, 4):
        jax.block_until_ready(f(jnp.ones((n, 5))))
    jax.block_until_ready(jax.jit(lambda x: x.sum(0))(jnp.ones((3, 5))))
print(json.dumps({"folder": None if folder is None else str(folder), **counted.stats.as_dict()}))
"""


def _run(env: dict, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "", **env}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_loads_every_program_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    env = {ENV_VAR: str(cache)}
    first = _run(env)
    assert first["folder"] == str(cache)
    assert first["programs"] >= 3 and first["cache_hits"] == 0
    assert any(cache.iterdir())
    second = _run(env)
    assert second["programs"] == first["programs"]
    assert second["cache_hits"] == second["programs"] and second["compiled"] == 0


def test_off_writes_nothing(tmp_path):
    xdg = tmp_path / "xdg"
    out = _run({ENV_VAR: "off", "XDG_CACHE_HOME": str(xdg)})
    assert out["folder"] is None and out["cache_hits"] == 0 and out["compiled"] >= 3
    # Nothing of jaxattn's cache (other libraries, matplotlib's font list, may use XDG too).
    assert not (xdg / "jaxattn").exists()


def test_explicit_setting_beats_the_environment(tmp_path):
    chosen = tmp_path / "chosen"
    out = _run({ENV_VAR: str(tmp_path / "env")}, str(chosen))
    assert out["folder"] == str(chosen) and any(chosen.iterdir())
    assert not (tmp_path / "env").exists()


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_cache_dir() == tmp_path / "jaxattn" / "jax"
    assert cache_dir_setting() == tmp_path / "jaxattn" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "jaxattn" / "jax"
    monkeypatch.setenv(ENV_VAR, "~/elsewhere")
    assert cache_dir_setting() == Path.home() / "elsewhere"
    for off in ("off", "OFF", "none", "0", "false", ""):
        assert cache_dir_setting(off) is None


def test_every_computing_command_takes_the_option():
    parser = build_parser()
    for command in ("train", "analyze", "wp", "reproduce"):
        args = parser.parse_args([command, "--compilation-cache", "off", *{
            "train": ["--out", "x"], "analyze": ["--run", "x"], "wp": ["--run", "x"],
            "reproduce": []}[command]])
        assert args.compilation_cache == "off"
