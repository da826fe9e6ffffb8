"""One process at a time per run directory: an advisory ``flock`` on ``DIR/.jaxattn.lock``.

The kernel drops a ``flock`` when its holder dies (even by ``kill -9``), so a stale lock cannot
outlive its process: the next command simply takes it. The file also names the holder (pid, host,
command, start time), which a refused command prints.
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

from jaxattn.errors import RunError

LOCK_NAME = ".jaxattn.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
        )
    except (OSError, ValueError, KeyError):
        return "another process"


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
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise RunError(
            f"{directory}: cannot create the run directory or its lock ({err.strerror})"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{directory}: in use by {_holder(path)}; wait for it to finish or choose another "
                "directory"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(["jaxattn", *sys.argv[1:2]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD.add(key)
        try:
            yield directory
        finally:
            _HELD.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_HELD: set[str] = set()
