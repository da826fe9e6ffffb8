"""How many XLA programs a piece of work compiles, and how long compiling took, from JAX's own
``jax.monitoring`` events (not guessed from wall times).

    with CompileCounter() as counted:
        run_something()
    counted.stats.programs, counted.stats.compile_seconds, counted.stats.cache_hits

A *program* is one backend compilation request (``/jax/core/compile/backend_compile_duration``);
with the persistent compilation cache on (:mod:`jaxattn.runtime.compile_cache`) some of them are served
from disk, counted in ``cache_hits``, and ``compiled`` is the rest. ``compile_seconds`` adds the
tracing, lowering and backend time JAX reports, so ``seconds - compile_seconds`` is what the work
itself took. Counters nest; each counts the events of every thread while it is open, or of its
own thread only (``this_thread=True``).
"""

from __future__ import annotations

import dataclasses
import threading

import jax.monitoring

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
# Python-side work before the backend sees a program: tracing to a jaxpr, lowering to MLIR.
FRONT_END = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
)
CACHE_HIT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass(eq=False)  # counters are told apart by identity
class CompileStats:
    """Totals over a counted span.

    Attributes:
      programs: backend compilation requests (one per jitted program and shape).
      cache_hits: of those, the ones loaded from the persistent compilation cache.
      compile_seconds: tracing + lowering + backend compilation (or cache loading) time.
    """

    programs: int = 0
    cache_hits: int = 0
    compile_seconds: float = 0.0

    @property
    def compiled(self) -> int:
        """Programs actually compiled (not loaded from the persistent cache)."""
        return self.programs - self.cache_hits

    def as_dict(self) -> dict:
        return {"programs": self.programs, "compiled": self.compiled,
                "cache_hits": self.cache_hits, "compile_seconds": self.compile_seconds}


_lock = threading.Lock()
_open: list[tuple[CompileStats, int | None]] = []  # open counters and their thread (None: all)
_registered = False


def _counting(thread: int):
    return [stats for stats, only in _open if only is None or only == thread]


def _on_duration(event: str, seconds: float, **_) -> None:
    if event != BACKEND_COMPILE and event not in FRONT_END:
        return
    thread = threading.get_ident()  # JAX reports on the thread that compiles
    with _lock:
        for stats in _counting(thread):
            stats.compile_seconds += seconds
            stats.programs += event == BACKEND_COMPILE


def _on_event(event: str, **_) -> None:
    if event == CACHE_HIT:
        thread = threading.get_ident()
        with _lock:
            for stats in _counting(thread):
                stats.cache_hits += 1


def _register() -> None:
    """Adds the two listeners once per process (JAX keeps them in plain lists)."""
    global _registered
    if _registered:
        return

    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)
    _registered = True


class CompileCounter:
    """A context manager whose ``stats`` total the compilations made while it is open: on every
    thread, or with ``this_thread`` only on the thread that opened it."""

    def __init__(self, this_thread: bool = False) -> None:
        self.stats = CompileStats()
        self._entry: tuple[CompileStats, int | None] | None = None
        self._this_thread = this_thread

    def __enter__(self) -> CompileCounter:
        _register()
        self._entry = (self.stats, threading.get_ident() if self._this_thread else None)
        with _lock:
            _open.append(self._entry)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _open.remove(self._entry)
