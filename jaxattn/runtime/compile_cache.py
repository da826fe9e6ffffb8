"""JAX's persistent compilation cache, on by default for every jaxattn command and entry point.

A second analysis or training run of the same shapes then loads its XLA programs from disk
instead of compiling them again: on the data sets of the studies compilation, not arithmetic,
decides how long a command takes (``benchmarks/RESULTS.md``).

Where the cache lives, first match wins:
- the ``--compilation-cache`` option of the command line (passed as ``setting``);
- the ``JAXATTN_COMPILATION_CACHE`` environment variable;
- ``$XDG_CACHE_HOME/jaxattn/jax``, else ``~/.cache/jaxattn/jax``.
The value ``off`` (any of ``off``, ``none``, ``0``, ``false``, or empty) disables it. Without
either, a cache folder the user already gave JAX itself (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update``) is left as it is. The command line sets it once, in
:func:`jaxattn.cli.commands`; the library functions :func:`jaxattn.train` and
:func:`jaxattn.analyze` set it too (it takes effect if JAX has not compiled anything yet).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV_VAR = "JAXATTN_COMPILATION_CACHE"
OFF = ("off", "none", "0", "false", "")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jaxattn/jax`` (``~/.cache/jaxattn/jax`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jaxattn" / "jax"


def cache_dir_setting(setting: str | None = None) -> Path | None:
    """The cache folder chosen by ``setting``, else the environment, else the default; None: off."""
    value = setting if setting is not None else os.environ.get(ENV_VAR)
    if value is None:
        return default_cache_dir()
    if value.strip().lower() in OFF:
        return None
    return Path(value).expanduser()


def enable_compilation_cache(setting: str | None = None) -> Path | None:
    """Points JAX's persistent compilation cache at the chosen folder; returns it (None: off).

    Every program is cached, however quick to compile or small: JAX's defaults skip programs
    compiled in under a second, which are most of ours and together most of a cold run. It
    updates ``jax.config``, which takes effect before the process's first compilation. Without ``setting`` or ``$JAXATTN_COMPILATION_CACHE``, a cache folder the
    user gave JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left as it is.
    """
    if setting is not None:
        os.environ[ENV_VAR] = setting  # later calls (library entry points) agree with it
    chosen = os.environ.get(ENV_VAR) is not None
    if not chosen and _jax_cache_dir():
        return Path(_jax_cache_dir())
    folder = cache_dir_setting(setting)
    values: dict[str, object] = {"jax_enable_compilation_cache": folder is not None}
    if folder is not None:
        values.update(
            jax_compilation_cache_dir=str(folder),
            jax_persistent_cache_min_compile_time_secs=0.0,
            jax_persistent_cache_min_entry_size_bytes=-1,
        )
    for name, value in values.items():
        jax.config.update(name, value)
    return folder


def _jax_cache_dir() -> str | None:
    return jax.config.jax_compilation_cache_dir


def add_cache_option(parser) -> None:
    """Adds ``--compilation-cache DIR|off`` to an argparse (sub)command."""
    parser.add_argument(
        "--compilation-cache",
        metavar="DIR|off",
        default=None,
        help=f"persistent JAX compilation cache folder, or off (default: ${ENV_VAR}, "
        "then $XDG_CACHE_HOME/jaxattn/jax or ~/.cache/jaxattn/jax)",
    )
