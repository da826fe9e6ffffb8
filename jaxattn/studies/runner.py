"""One runner for every per-instance stage: batching, sharding, writing rows back, the cache.

A :class:`~jaxattn.studies.stage.Stage` is a pure per-batch computation ``compute(model, params,
batch, options) -> {name: <array>[B, ...]}`` plus what its report needs (its summary, table rows,
figures and HTML pieces; see :mod:`jaxattn.studies.jain_wallace.stages`). :func:`run_stage`
evaluates it over the analysed instances in bucketed batches, split over the devices, writes the
rows back in the order of the instances and saves them as one ``.npz``, reusing earlier results
where :mod:`jaxattn.studies.stage_cache` finds them (the output says which).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxattn.core.protocol import AttentionModel, Params
from jaxattn.data.batching import EncodedSplit, eval_batches, make_batch, num_batches
from jaxattn.runtime import distributed
from jaxattn.runtime.compile_stats import CompileCounter
from jaxattn.runtime.memory import pass_bytes, passes_at_once
from jaxattn.studies.overlap import run_batches
from jaxattn.studies.stage import Stage
from jaxattn.studies.stage_cache import find_cached, fit_tokens, load_stage, option_value, save_npz

SEARCH = object()  # run_stage: look for cached rows itself


# --------------------------------------------------------------------------------------------
# Running


def data_parallel() -> tuple[NamedSharding, NamedSharding] | None:
    """(batch sharding, replicated sharding) over every device, of every process under
    ``jax.distributed``; None with one device.

    The stages are independent per instance, so splitting the batch axis over the devices
    (GPUs, or CPU cores with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, or the
    devices of several processes) runs them in parallel with no communication.
    """
    return distributed.shardings()


def stage_batches(
    split: EncodedSplit, indices: np.ndarray, batch_size: int, buckets, params: Params
):
    """(params, batches): length-sorted bucketed batches of the instances, placed on the devices
    (batch axis split, params replicated) when there are several; ``batch_size`` must then be a
    multiple of the number of devices."""
    batches = eval_batches(split, batch_size, buckets, indices)
    shardings = data_parallel()
    if shardings is None:
        return params, batches
    batch_sharding, replicated = shardings
    if distributed.process_count() > 1:  # every process holds the batch; each places its part
        return (distributed.place(params, replicated),
                (distributed.place_batch(b, shardings) for b in batches))
    return jax.device_put(params, replicated), (jax.device_put(b, batch_sharding) for b in batches)


def rows_within_memory(
    model: AttentionModel, params: Params, split: EncodedSplit, indices: np.ndarray, options: Any
) -> int:
    """The most rows a batch may hold so that a differentiated pass over the widest of
    ``indices`` keeps its self-attention maps within ``options.gradient_memory`` GiB
    (:mod:`jaxattn.runtime.memory`): a Transformer's maps grow as ``T^2``, and a batch size that
    suits sentences exhausts memory on 512-piece reviews. Unbounded without self-attention or
    without the option."""
    budget = getattr(options, "gradient_memory", None)
    if budget is None or not len(indices):
        return len(indices) or 1
    widest = indices[int(np.argmax(split.lengths[indices]))]
    row = make_batch(split, [widest], 1, options.buckets)
    return passes_at_once(len(indices), 1, pass_bytes(model, params, row), budget)


def compute_stage(
    stage: Stage,
    model: AttentionModel,
    params: Params,
    split: EncodedSplit,
    indices: np.ndarray,
    options: Any,
    progress: bool = True,
    given: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Evaluates ``stage`` on the rows ``indices`` of ``split``: (arrays in row order, timings).

    ``given`` holds the results the stage ``needs``, <[len(indices), T']> in the order of
    ``indices``."""
    t_max = split.width(indices)
    row_of = np.full(len(split), -1)
    row_of[indices] = np.arange(len(indices))
    # Never pad a batch beyond the instances there are (a small --limit stays cheap), and split
    # it evenly over the devices.
    devices = len(jax.devices())
    batch_size = min(getattr(options, stage.batch_size), len(indices),
                     rows_within_memory(model, params, split, indices, options))
    batch_size = -(-batch_size // devices) * devices
    arrays: dict[str, np.ndarray] = {}
    per_bucket: dict[str, int] = {}  # padded length -> programs compiled for its batches
    compute_seconds = 0.0
    start = time.perf_counter()
    params, batches = stage_batches(split, indices, batch_size, options.buckets, params)

    shardings = data_parallel()
    run = (rows_on_each_device(stage, model, options, shardings[0].mesh)
           if stage.rows_apart and shardings is not None
           else lambda p, b, g: _call(stage, model, p, b, options, g))

    # Under several processes the outputs span them (gathered by distributed.fetch), and the
    # collectives must run in the same order everywhere: no compiling ahead on other threads.
    def compute(batch):
        if not stage.needs:
            return distributed.fetch(run(params, batch, None))
        index = np.asarray(distributed.fetch(batch.index))
        given_rows = _given_rows(given or {}, row_of, index, batch.tokens.shape[1])
        return distributed.fetch(run(params, batch, given_rows))

    workers = 0 if distributed.process_count() > 1 else None

    with CompileCounter() as counted:
        for batch, out, compiled, seconds in tqdm(
            run_batches(compute, list(batches), workers),
            total=num_batches(len(indices), batch_size),
            desc=stage.name,
            disable=not progress,
            leave=False,
        ):
            bucket = str(batch.tokens.shape[1])
            per_bucket[bucket] = per_bucket.get(bucket, 0) + compiled.programs
            compute_seconds += max(seconds - compiled.compile_seconds, 0.0)
            index = np.asarray(distributed.fetch(batch.index))
            real = index >= 0
            rows = row_of[index[real]]
            for key, value in out.items():
                value = np.asarray(value)[real]
                if key in stage.token_keys:
                    value = fit_tokens(value, t_max)
                if key not in arrays:
                    arrays[key] = np.zeros((len(indices),) + value.shape[1:], value.dtype)
                arrays[key][rows] = value
    seconds = time.perf_counter() - start
    # Compiling overlaps computing (jaxattn.studies.overlap): the two are sums over the batches
    # and the compile threads, so together they can exceed the wall time ``seconds``.
    timing = {
        "seconds": seconds,
        "instances_per_second": len(indices) / max(seconds, 1e-9),
        "devices": devices,
        **counted.stats.as_dict(),
        "compute_seconds": compute_seconds,
        "programs_per_bucket": per_bucket,
    }
    return arrays, timing


def _call(stage: Stage, model, params: Params, batch, options: Any, given: dict | None) -> dict:
    if not stage.needs:
        return stage.compute(model, params, batch, options)
    return stage.compute(model, params, batch, options, given=given)


def rows_on_each_device(stage: Stage, model: AttentionModel, options: Any, mesh):
    """``(params, batch, given) -> outputs`` of ``stage`` with each device of ``mesh`` running
    the computation on its own rows of the batch (``jax.shard_map``, one jitted program per
    batch shape), for a stage whose rows are computed apart (:attr:`Stage.rows_apart`).

    Left to XLA's partitioner, a stage that enumerates work across the rows of a batch
    (leave-one-out's (row, token) pairs) is not split: every device computed every row, so two
    CPU devices ran it 2x slower than one (``benchmarks/RESULTS.md``). Here each device's
    program sees only its rows, so the split is by construction."""
    rows = PartitionSpec("data")

    def body(params, batch, given):
        return _call(stage, model, params, batch, options, given)

    # An analysis batch has no dropout key: every leaf of it and of ``given`` is [B, ...].
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(), rows, rows),
                                 out_specs=rows, check_vma=False))


def _given_rows(given: dict, row_of: np.ndarray, index: np.ndarray, steps: int) -> dict:
    """The rows of a batch (split rows ``index``, -1 for padding) of every ``given`` array,
    fitted to the batch's ``steps`` tokens; padding rows get row 0 (their results are dropped)."""
    rows = np.where(index >= 0, row_of[np.maximum(index, 0)], 0)
    return {k: fit_tokens(np.asarray(v)[rows], steps).astype(np.float32) for k, v in given.items()}


def run_stage(
    stage: Stage,
    model: AttentionModel,
    params: Params,
    split: EncodedSplit,
    indices: np.ndarray,
    options: Any,
    path: Path,
    meta: dict,
    places: Iterable[Path] = (),
    compute: bool = True,
    progress: bool = True,
    found: Any = SEARCH,
    given: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict] | None:
    """The results of ``stage`` for ``indices``, saved at ``path`` (arrays, metadata).

    ``meta`` holds ``key`` (:func:`~jaxattn.studies.stage_cache.stage_key`) and ``digests`` (:func:`~jaxattn.studies.stage_cache.row_digests` of the
    rows). ``path`` itself is reused when it holds exactly these rows; otherwise rows are taken
    from the first file in ``places`` that covers them (and saved at ``path``), else computed,
    unless ``compute`` is False (then None). ``found`` passes the result of a
    :func:`~jaxattn.studies.stage_cache.find_cached` already made, so the files are not read twice. ``given``: the results
    the stage ``needs`` (:func:`compute_stage`).
    """
    digests = meta.pop("digests")
    length = split.width(indices)
    if found is SEARCH:
        found = find_cached(stage, meta["key"], [path, *places], indices, digests, length)
    if found is not None:
        arrays, old, source = found
        if source != path or not np.array_equal(load_stage(path)[0]["index"], indices):
            save_npz(path, arrays, {**old, **meta})
        if progress:
            tqdm.write(f"{stage.name}: reusing {len(indices)} rows from {source}")
        return arrays, {**old, **meta}
    if not compute:
        return None
    arrays, timing = compute_stage(stage, model, params, split, indices, options, progress, given)
    arrays["index"] = np.asarray(indices)
    arrays["row_digest"] = digests
    meta = {**meta, **timing, "stage": stage.name,
            "options": {k: option_value(getattr(options, k)) for k in stage.options}}
    save_npz(path, arrays, meta)
    if progress:
        tqdm.write(f"{stage.name}: {len(indices)} instances in {timing['seconds']:.1f}s "
                   f"(compiling {timing['compile_seconds']:.1f}s, {timing['compiled']} programs, "
                   f"{timing['cache_hits']} from the cache) -> {path}")
    return arrays, meta
