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
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxattn.core.errors import JaxattnError

# (process index, process count) once initialised; a single process before that.
_PROCESS = (0, 1)


class DistributedError(JaxattnError):
    """A multi-process setting that cannot be used; the message names the flag or variable."""


def add_arguments(parser) -> None:
    """``--coordinator``, ``--num-processes``, ``--process-id`` and ``--cluster-auto``."""
    group = parser.add_argument_group(
        "multi-process (jax.distributed)",
        "run one process per host/slot, all with the same command; without these flags the "
        "variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are read")
    group.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                       help="address of process 0, which coordinates")
    group.add_argument("--num-processes", type=int, metavar="N", default=None)
    group.add_argument("--process-id", type=int, metavar="I", default=None)
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


def check_port_free(address: str, source: str) -> None:
    """Process 0 serves the coordinator at ``address``: refuse before JAX starts when that port
    is taken (JAX itself would crash the process)."""
    host, port = split_address(address, source)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise DistributedError(f"{source}: coordinator host {host!r} is unknown ({err})") from None
    family, kind, proto, _, where = infos[0]
    with socket.socket(family, kind, proto) as s:
        try:
            s.bind(where)
        except OSError as err:
            raise DistributedError(f"{source}: cannot serve the coordinator at {address} "
                                   f"({err.strerror}); is another run using port {port}?") from None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, cluster_auto: bool = False) -> bool:
    """Joins the processes into one JAX runtime, once, before any computation; returns whether
    it did (False for a single process)."""
    global _PROCESS
    found = settings(coordinator, num_processes, process_id)
    if found is None and not cluster_auto:
        return False

    if _PROCESS[1] > 1:
        return True  # already joined (a study calling a command's function)
    # CPU computations that span processes need a collectives library; harmless on accelerators.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if found is None:
        jax.distributed.initialize()  # JAX's own cluster detection
    else:
        coordinator, count, index = found
        if index == 0:
            check_port_free(coordinator, "--coordinator")
        # The coordinator listens only at the address it was given (localhost for
        # ``python -m jaxattn.runtime.launch``), never on every interface, which is JAX's default.
        jax.distributed.initialize(coordinator, count, index, coordinator_bind_address=coordinator)
    _PROCESS = (jax.process_index(), jax.process_count())
    return True


def from_args(args) -> bool:
    """:func:`initialize` from the parsed flags of :func:`add_arguments`."""
    return initialize(args.coordinator, args.num_processes, args.process_id, args.cluster_auto)


def process_count() -> int:
    return _PROCESS[1]


def is_writer() -> bool:
    """Whether this process writes files: process 0, or the only process."""
    return _PROCESS[0] == 0


def barrier(name: str) -> None:
    """Waits until every process has reached ``barrier(name)`` (no-op for one process)."""
    if _PROCESS[1] > 1:

        multihost_utils.sync_global_devices(name)


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
