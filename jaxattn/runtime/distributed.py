"""Several processes (and hosts) as one set of devices, on JAX's own runtime (``jax.distributed``).

Every command runs the same program in every process (JAX's multi-controller model). Once
:func:`initialize` has run, ``jax.devices()`` lists the devices of all processes, and the mesh the
analyses and the trainer build over them spans every process:
- the analyses split each batch over that mesh and gather the rows back into every process
  (:func:`fetch`), so each process holds the same arrays;
- training is data-parallel: the batch axis is split over the mesh and the parameters are
  replicated, so XLA reduces the gradients over all devices inside the step;
- only process 0 writes files or takes a run directory's lock (:func:`is_writer`), and the other
  processes wait for it where they read what it wrote (:func:`barrier`).

On CPUs the collectives go through Gloo (``jax_cpu_collectives_implementation``), which JAX's
CPU backend needs for any computation that spans processes.

Before JAX joins the processes they meet once at the coordinator's address (:func:`rendezvous`),
within ``--coordinator-timeout`` seconds: a missing process 0, or a process that never joins, is
then one line naming it, where JAX itself would wait five minutes and abort with a C++ stack.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

import jax
import numpy as np
from jax._src.distributed import global_state  # the client jax.distributed started
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxattn.core.errors import JaxattnError

# (process index, process count) once initialised; a single process before that.
_PROCESS = (0, 1)
TIMEOUT_ENV = "JAXATTN_COORDINATOR_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
_SHARED = 0  # shared_message calls so far
SHARED_WAIT_MS = 30 * 60 * 1000  # how long the others wait for process 0 there


class DistributedError(JaxattnError):
    """A multi-process setting that cannot be used; the message names the flag or variable."""


def add_arguments(parser) -> None:
    """``--coordinator``, ``--num-processes``, ``--process-id``, ``--coordinator-timeout`` and
    ``--cluster-auto``."""
    group = parser.add_argument_group(
        "multi-process (jax.distributed)",
        "run one process per host/slot, all with the same command; without these flags the "
        "variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are read")
    group.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                       help="address of process 0, which coordinates (default: "
                       "$JAX_COORDINATOR_ADDRESS, else one process)")
    group.add_argument("--num-processes", type=int, metavar="N", default=None,
                       help="how many processes take part (default: $JAX_NUM_PROCESSES, else 1)")
    group.add_argument("--process-id", type=int, metavar="I", default=None,
                       help="this process's id, 0 to N-1 (default: $JAX_PROCESS_ID, else 0)")
    group.add_argument("--coordinator-timeout", type=float, metavar="SECONDS", default=None,
                       help=f"how long the processes wait for each other to start (default: "
                       f"${TIMEOUT_ENV}, else {DEFAULT_TIMEOUT:g})")
    group.add_argument("--cluster-auto", action="store_true",
                       help="let JAX detect the cluster (Slurm, Open MPI, TPU pod, Kubernetes)")


def settings(coordinator: str | None = None, num_processes: int | None = None,
             process_id: int | None = None, environ=os.environ) -> tuple | None:
    """(coordinator, num_processes, process_id) from the flags, else the environment; None when
    neither asks for several processes. Incomplete or inconsistent settings are refused."""
    given = [coordinator, num_processes, process_id]
    names = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
    source = "--coordinator/--num-processes/--process-id"
    if all(v is None for v in given):
        if not any(environ.get(n) for n in names):
            return None
        source = "/".join(names)
        try:
            given = [environ.get(names[0]) or None,
                     *(int(environ[n]) if environ.get(n) else None for n in names[1:])]
        except ValueError:
            raise DistributedError(f"{source}: JAX_NUM_PROCESSES and JAX_PROCESS_ID must be "
                                   "whole numbers") from None
    coordinator, num_processes, process_id = given
    if None in given:
        raise DistributedError(f"{source}: give all three (coordinator address, process count, "
                               "this process's id) or none")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise DistributedError(f"{source}: process id {process_id} is not in 0..{num_processes - 1}")
    split_address(coordinator, source)
    return coordinator, num_processes, process_id


def split_address(address: str, source: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` (``[::1]:PORT`` for an IPv6 host); one line naming
    ``source`` otherwise."""
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"{source}: coordinator {address!r} is not HOST:PORT "
                               "(a port 1-65535)")
    return host, int(port)


def coordinator_timeout(seconds: float | None = None, environ=os.environ) -> float:
    """How long processes wait for each other to start: ``seconds`` (``--coordinator-timeout``),
    else ``$JAXATTN_COORDINATOR_TIMEOUT``, else 60; one line naming the source when not a
    positive number."""
    source, value = "--coordinator-timeout", seconds
    if value is None and environ.get(TIMEOUT_ENV):
        source, value = TIMEOUT_ENV, environ[TIMEOUT_ENV]
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(value)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise DistributedError(f"{source}: {value if seconds is not None else environ[TIMEOUT_ENV]!r}"
                               " is not a positive number of seconds")
    return value


def _bound_listener(address: str, source: str) -> socket.socket:
    """A socket listening at the coordinator's ``address``; one line when it cannot."""
    host, port = split_address(address, source)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise DistributedError(f"{source}: coordinator host {host!r} is unknown ({err})") from None
    family, kind, proto, _, where = infos[0]
    s = socket.socket(family, kind, proto)
    # A previous run's connections in TIME_WAIT must not block the port (a listener still does).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(where)
        s.listen(64)
    except OSError as err:
        s.close()
        raise DistributedError(f"{source}: cannot serve the coordinator at {address} "
                               f"({err.strerror}); is another run using port {port}?") from None
    return s


def check_port_free(address: str, source: str) -> None:
    """Process 0 serves the coordinator at ``address``: refuse before JAX starts when that port
    is taken (JAX itself would crash the process)."""
    _bound_listener(address, source).close()


def _names(ids) -> str:
    ids = sorted(ids)
    return ("process " if len(ids) == 1 else "processes ") + ", ".join(map(str, ids))


def _read_line(conn: socket.socket, deadline: float) -> str | None:
    """One ``\n``-ended line (at most 64 KiB) from ``conn`` before ``deadline``; None on EOF,
    timeout or error."""
    data = b""
    while not data.endswith(b"\n") and len(data) < 65536:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data.decode("utf-8", "replace").rstrip("\n")


def rendezvous(address: str, count: int, index: int, timeout: float,
               source: str = "--coordinator") -> None:
    """All ``count`` processes meet at ``address`` before JAX joins them, each waiting at most
    ``timeout`` seconds: process 0 listens there (before JAX's coordinator takes the port) until
    every other process has said which it is; the others connect, retrying until process 0
    answers. A process 0 that never answers, or processes that never join, end every process
    that is waiting with one line naming them."""
    if index == 0:
        _serve(address, count, timeout, source)
    else:
        _join(address, count, index, timeout, source)


def _serve(address: str, count: int, timeout: float, source: str) -> None:
    deadline = time.monotonic() + timeout
    joined: set[int] = set()
    conns: list[socket.socket] = []  # every process that said which it is, to be answered
    error = None
    with _bound_listener(address, source) as listener:
        try:
            while len(joined) < count - 1 and error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(set(range(1, count)) - joined)
                    error = (f"{source}: {_names(missing)} of {count} did not join process 0 at "
                             f"{address} within {timeout:g} s; start every process (--process-id "
                             f"0..{count - 1}) or raise --coordinator-timeout")
                    break
                listener.settimeout(remaining)
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                words = (_read_line(conn, min(deadline, time.monotonic() + 10)) or "").split()
                if len(words) != 3 or words[0] != "jaxattn" or not all(
                        w.isdigit() for w in words[1:]):
                    conn.close()  # not one of ours (a port scan, another program): ignore it
                    continue
                conns.append(conn)
                their_index, their_count = int(words[1]), int(words[2])
                if their_count != count:
                    error = (f"{source}: process {their_index} was started with "
                             f"--num-processes {their_count}, process 0 with {count}")
                elif their_index == 0 or their_index in joined:
                    error = (f"{source}: two processes were started as process {their_index}; "
                             f"give each of 0..{count - 1} once")
                joined.add(their_index)
            reply = "go" if error is None else f"refuse {error}"
            for conn in conns:
                try:
                    conn.sendall(reply.encode() + b"\n")
                except OSError:
                    pass  # it is gone; JAX (or its own error) ends it
            # Each peer closes first, so the port is not held in TIME_WAIT by this side.
            for conn in conns:
                _read_line(conn, time.monotonic() + 5)
        finally:
            for conn in conns:
                conn.close()
    if error is not None:
        raise DistributedError(error)


def _join(address: str, count: int, index: int, timeout: float, source: str) -> None:
    host, port = split_address(address, source)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=max(0.1, min(
                2.0, deadline - time.monotonic())))
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"{source}: no process 0 answered at {address} within {timeout:g} s; start "
                    "process 0 (--process-id 0) there, or raise --coordinator-timeout") from None
            time.sleep(0.2)
    with conn:
        conn.sendall(f"jaxattn {index} {count}\n".encode())
        # Process 0 may have started after this one and waits up to its own timeout for others.
        reply = _read_line(conn, time.monotonic() + timeout + 10)
    if reply == "go":
        return
    if reply is not None and reply.startswith("refuse "):
        raise DistributedError(reply[len("refuse "):])
    raise DistributedError(f"{source}: process 0 at {address} did not let process {index} join "
                           "(it stopped, or the port belongs to another program)")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, cluster_auto: bool = False,
               timeout: float | None = None) -> bool:
    """Joins the processes into one JAX runtime, once, before any computation; returns whether
    it did (False for a single process). ``timeout``: :func:`coordinator_timeout`."""
    global _PROCESS
    found = settings(coordinator, num_processes, process_id)
    if found is None and not cluster_auto:
        return False

    if _PROCESS[1] > 1:
        return True  # already joined (a study calling a command's function)
    timeout = coordinator_timeout(timeout)
    # Every process has met at the rendezvous by then; JAX's own wait is a backstop.
    bound = max(1, int(timeout + 0.999))
    # CPU computations that span processes need a collectives library; harmless on accelerators.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if found is None:
        try:
            jax.distributed.initialize(initialization_timeout=bound)  # JAX's cluster detection
        except ValueError as err:  # no coordinator address, count or id could be found
            raise DistributedError(f"--cluster-auto: no cluster detected: JAX found no Slurm, Open "
                                   f"MPI, TPU pod or Kubernetes job here ({err})") from None
    else:
        coordinator, count, index = found
        rendezvous(coordinator, count, index, timeout)
        # The coordinator listens only at the address it was given (localhost for
        # ``python -m jaxattn.runtime.launch``), never on every interface, which is JAX's default.
        jax.distributed.initialize(coordinator, count, index, coordinator_bind_address=coordinator,
                                   initialization_timeout=bound)
    _PROCESS = (jax.process_index(), jax.process_count())
    return True


def from_args(args) -> bool:
    """:func:`initialize` from the parsed flags of :func:`add_arguments`."""
    return initialize(args.coordinator, args.num_processes, args.process_id, args.cluster_auto,
                      getattr(args, "coordinator_timeout", None))


def process_count() -> int:
    return _PROCESS[1]


def is_writer() -> bool:
    """Whether this process writes files: process 0, or the only process."""
    return _PROCESS[0] == 0


def barrier(name: str) -> None:
    """Waits until every process has reached ``barrier(name)`` (no-op for one process)."""
    if _PROCESS[1] > 1:

        multihost_utils.sync_global_devices(name)


def shared_message(message: str | None) -> str | None:
    """Process 0's ``message`` (or its None) in every process; the others' argument is ignored.
    How a refusal that only process 0 can see (a run directory's lock) ends every process with
    the same line, where the others would otherwise wait for it at the next barrier.

    It goes through the coordinator's key-value store, not a collective (which would start Gloo
    and print its own line); the calls are numbered alike in every process, as they run the same
    program."""
    global _SHARED
    if _PROCESS[1] == 1:
        return message
    _SHARED += 1
    key = f"jaxattn/shared/{_SHARED}"
    if is_writer():
        global_state.client.key_value_set(key, "-" if message is None else "+" + message)
        return message
    value = global_state.client.blocking_key_value_get(key, SHARED_WAIT_MS)
    return None if value == "-" else value[1:]


def fetch(tree):
    """Host numpy copies of a pytree of (possibly process-spanning) arrays, the same in every
    process: rows computed on other processes' devices are gathered here."""

    if _PROCESS[1] == 1:
        return jax.device_get(tree)

    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return jax.device_get(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def shardings(devices: Sequence | None = None):
    """(batch-axis sharding, replicated sharding) over ``devices`` (default all of every
    process) on a one-axis mesh ``data``; None with a single device."""

    devices = list(jax.devices() if devices is None else devices)
    if len(devices) == 1:
        return None
    mesh = Mesh(np.asarray(devices), ("data",))
    return NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())


def place(tree, sharding):
    """Puts a pytree of host arrays that every process holds in full onto ``sharding``: each
    process supplies the pieces its own devices hold (no transfer between processes)."""

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(one, tree)


def place_batch(batch, shardings, member_axis: bool = False):
    """A :class:`~jaxattn.core.protocol.Batch` held in full by every process, with its batch
    axis (axis 1 of a stacked ``[M, B, ...]`` batch when ``member_axis``) split over the mesh of
    ``shardings`` (:func:`shardings`); its dropout key is replicated."""

    split, replicated = shardings
    if member_axis:
        split = NamedSharding(split.mesh, PartitionSpec(None, "data"))
    key = batch.dropout_key
    placed = place(batch.replace(dropout_key=None), split)
    return placed.replace(dropout_key=None if key is None else place(key, replicated))
