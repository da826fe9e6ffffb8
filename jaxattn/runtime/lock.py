"""One process at a time per run directory: an advisory ``flock`` on ``DIR/.jaxattn.lock``.

The kernel drops a ``flock`` when its holder dies (even by ``kill -9``), so a stale lock cannot
outlive its process: the next command simply takes it. While held, the file names the holder
(pid, host, command, start time), which a refused command prints. It is removed on release (and
a directory the lock itself created is removed again if nothing else was written there), so a
command that fails before writing anything leaves no trace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from jaxattn.core.errors import RunError
from jaxattn.runtime.distributed import is_writer, process_count, shared_message
from jaxattn.runtime.files import remove_stale_temporaries

LOCK_NAME = ".jaxattn.lock"
_HELD: set[str] = set()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


def _acquire(path: Path) -> int:
    """An fd holding ``path``'s lock; a RunError naming the holder when another process has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(
                f"{path.parent}: in use by {_holder(path)}; wait for it to finish or choose "
                "another directory"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder released and removed the file meanwhile: lock the new one


@contextlib.contextmanager
def run_lock(directory: str | Path, command: str = "") -> Iterator[Path]:
    """Holds ``directory``'s lock for the ``with`` block; a second holder gets a :class:`RunError`.

    Re-entrant within one process (a study that trains sub-runs inside its own directory).
    """
    directory = Path(directory)
    key = str(directory.resolve())
    if key in _HELD:
        yield directory
        return
    if not is_writer():
        # Under jax.distributed, process 0 holds the lock; its refusal ends this process too.
        refused = shared_message(None)
        if refused is not None:
            raise RunError(refused)
        _HELD.add(key)
        try:
            yield directory
        finally:
            _HELD.discard(key)
        return
    created = not directory.exists()
    try:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / LOCK_NAME
            fd = _acquire(path)
        except OSError as err:
            raise RunError(
                f"{directory}: cannot create the run directory or its lock ({err.strerror})"
            ) from None
    except RunError as err:
        if process_count() > 1:
            shared_message(str(err))
        raise
    if process_count() > 1:
        shared_message(None)
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(["jaxattn", *sys.argv[1:2]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD.add(key)
        remove_stale_temporaries(directory)  # ours to clean: we hold the directory
        try:
            yield directory
        finally:
            _HELD.discard(key)
            path.unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only if nothing was written there
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
