"""How many devices JAX's CPU backend exposes, decided before JAX starts.

The J&W analyses split every batch over the local devices with no communication
(:func:`jaxattn.studies.runner.data_parallel`). On a CPU host one device per core, each
running its own single-threaded programs, uses the cores better than one multi-threaded device for
these small per-step programs: on 2 cores leave-one-out and the adversarial search ran 1.6x and
2.0x faster (``benchmarks/RESULTS.md``). Training is the other way round (one device was about 10%
faster), so only the analysis command asks for this.
"""

from __future__ import annotations

import os

import jax

COUNT_FLAG = "--xla_force_host_platform_device_count"


def split_cpu_into_devices(count: int | None = None) -> bool:
    """Asks JAX for ``count`` CPU devices (default: one per core), ``jax_num_cpu_devices``.

    Only possible before JAX starts its backends (its first array or device query); it changes
    nothing (and returns False) after that, when ``XLA_FLAGS`` or ``JAX_NUM_CPU_DEVICES`` already
    set the count (the user's choice wins), or for a count of 1. Accelerator backends are
    unaffected.
    """
    count = count or os.cpu_count() or 1
    chosen = COUNT_FLAG in os.environ.get("XLA_FLAGS", "") or os.environ.get("JAX_NUM_CPU_DEVICES")
    if count <= 1 or chosen:
        return False
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX refuses the setting once its backends have started
        return False
    return True

