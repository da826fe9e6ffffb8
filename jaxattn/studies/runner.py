"""One runner for every per-instance stage: batching, sharding, writing rows back, the cache.

A :class:`Stage` is a pure per-batch computation ``compute(model, params, batch, options) ->
{name: <array>[B, ...]}`` plus what its report needs (its summary, table rows, figures and HTML
pieces; see :mod:`jaxattn.studies.jain_wallace.stages`). :func:`run_stage` evaluates it over the
analysed instances in bucketed batches, split over the devices, writes the rows back in the order
of the instances and saves them as one ``.npz``.

The cache keys every result on everything it depends on: the stage and its code version, the
options it reads, a digest of the parameters, the split, the jaxattn version and, per row, a
digest of the inputs of that row (token ids, query, candidates). A stage is reused from any stage
file of the same key whose rows cover the requested rows with the same digests (a fuller earlier
analysis serves a narrower one); anything else is recomputed, and the output says which.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from tqdm.auto import tqdm

from jaxattn.core.errors import RunError
from jaxattn.core.protocol import AttentionModel, Params, capabilities
from jaxattn.core.version import __version__
from jaxattn.data.batching import EncodedSplit, eval_batches, make_batch, num_batches
from jaxattn.runtime import distributed
from jaxattn.runtime.compile_stats import CompileCounter
from jaxattn.runtime.files import write_atomic
from jaxattn.runtime.memory import pass_bytes, passes_at_once
from jaxattn.studies.overlap import run_batches

CACHE_FORMAT = 2  # bump when the layout of stage files changes
SEARCH = object()  # run_stage: look for cached rows itself


@dataclasses.dataclass(frozen=True)
class Stage:
    """One analysis of a study: its computation, its options and its pieces of the report.

    Attributes:
      name: file stem and summary key.
      compute: ``(model, params, batch, options) -> {key: <array>[B, ...]}``, one jitted program
        per batch shape; None for a stage derived from other stages' results.
      token_keys: keys whose last axis is the token axis (padded to the longest analysed row).
      options: option fields the results depend on (part of the cache key).
      batch_size: the option field that sets the stage's batch size.
      version: bump when the computation changes, so cached results are recomputed.
      importances: ``(key, label)`` of every token importance the stage yields.
      summarize: ``(data) -> {summary key: value}`` merged into ``summary.json``.
      tables: ``(summary) -> [(title, rows)]`` for ``tables.md`` and the page.
      figures: ``(data, out_dir) -> [(file name, caption)]`` written into ``out_dir``.
      facts: ``(data, row) -> [text]`` shown above an instance's heatmap.
      heatmaps: ``(data, row) -> {label: <float>[T]}`` extra rows of an instance's heatmap,
        over all T positions of the row (the report keeps the real tokens).
      heatmaps_after: the importance key whose heatmap row these rows follow; None: after every
        importance row.
      requires: capabilities of the model the computation uses beyond the base contract
        (names of :data:`~jaxattn.core.protocol.CAPABILITIES`, e.g. ``("pooling",)`` for a stage
        that reads or replaces the pooling attention); a model lacking one skips the stage,
        with the reason said (:func:`skip_reason`).
      applies: ``(model, params, batch) -> bool``, whether the stage can run on ``model`` (asked
        on one batch) once ``requires`` is met; a stage that does not apply is skipped. None:
        every model.
      skip_note: why the stage is skipped when ``applies`` is False (default: "it does not
        apply to this model"), e.g. what the data lacks.
      needs: token-importance keys of other stages the computation reads: it is then called
        with ``given={key: <float32>[B, T]}`` (those of them that were computed), the rows of
        each batch taken from the other stages' results.
      stream: the stage's stream of the analysis seed; None (the default) derives it from the
        name (:func:`jaxattn.studies.registry.random_key`). The stages of jaxattn 0.2 keep the
        numbers they had, so their results and cached files stay the same.
      verdict: ``(evidence) -> Row`` the stage's row of the verdict table, or a list of rows
        (:mod:`jaxattn.report.evidence`), or None.
      description: one line for ``--only``'s help and the documentation.
      settings: ``((name, value), ...)`` fixed settings of a stage of your own that its results
        depend on (e.g. a noise level); part of the cache key.
      by_default: whether the stage runs when ``only`` names no stages; False for a stage that
        is costly enough to be asked for by name (``--only``).
    """

    name: str
    compute: Callable[..., dict] | None = None
    token_keys: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    batch_size: str = "batch_size"
    version: int = 1
    importances: tuple[tuple[str, str], ...] = ()
    summarize: Callable[[Any], dict] | None = None
    tables: Callable[[dict], list[tuple[str, list[dict]]]] | None = None
    figures: Callable[[Any, Path], list[tuple[str, str]]] | None = None
    facts: Callable[[Any, int], list[str]] | None = None
    heatmaps: Callable[[Any, int], dict[str, np.ndarray]] | None = None
    heatmaps_after: str | None = None
    requires: tuple[str, ...] = ()
    applies: Callable[[AttentionModel, Params, Any], bool] | None = None
    skip_note: str = ""
    needs: tuple[str, ...] = ()
    stream: int | None = None
    verdict: Callable[[Any], Any] | None = None
    description: str = ""
    settings: tuple[tuple[str, Any], ...] = ()
    by_default: bool = True


def skip_reason(stage: Stage, model: Any, params: Params, batch: Any) -> str | None:
    """Why ``stage`` cannot run on ``model`` (asked on one ``batch``), None when it can."""
    lacking = [name for name in stage.requires if name not in capabilities(model)]
    if lacking:
        names = " and ".join(repr(name) for name in lacking)
        return f"it needs the model capability {names}, which {type(model).__name__} lacks"
    if stage.applies is not None and not stage.applies(model, params, batch):
        return stage.skip_note or "it does not apply to this model"
    return None


# --------------------------------------------------------------------------------------------
# Keys


def params_digest(params: Params) -> str:
    """A digest of a params pytree's paths, dtypes, shapes and values (key order does not matter)."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        value = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()[:16]


def row_digests(split: EncodedSplit, indices: Iterable[int]) -> np.ndarray:
    """<U16>[N] a digest of each row's model inputs (token ids, query ids, candidates)."""
    out = []
    for i in indices:
        h = hashlib.blake2b(np.asarray(split.tokens[i], np.int32).tobytes(), digest_size=8)
        if split.queries is not None:
            h.update(b"|q|" + np.asarray(split.queries[i], np.int32).tobytes())
        if split.candidates is not None:
            h.update(b"|c|" + np.asarray(split.candidates[i], bool).tobytes())
        out.append(h.hexdigest())
    return np.asarray(out, dtype="<U16")


def stage_key(
    stage: Stage, options: Any, params: str, split: str, inputs: dict | None = None
) -> str:
    """What a stage's results depend on besides the rows: code, options, parameters, split, and
    the keys of the stages whose results it reads (``inputs``, name -> key)."""
    described = {
        "stage": stage.name,
        "version": stage.version,
        "format": CACHE_FORMAT,
        "jaxattn": __version__,
        "options": {k: _plain(getattr(options, k)) for k in stage.options},
        "params": params,
        "split": split,
        **({"inputs": inputs} if inputs else {}),
        **({"settings": [[k, _plain(v)] for k, v in stage.settings]} if stage.settings else {}),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------------
# Stage files


def save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.asarray(json.dumps(meta)), **arrays)
    write_atomic(path, buf.getvalue())


def load_stage(path: str | Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and metadata of a stage file, None if absent; a damaged file is a RunError."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
            meta = json.loads(str(data["__meta__"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise RunError(
            f"{path}: damaged result file ({type(err).__name__}); delete it to recompute"
        ) from None
    return arrays, meta


def fit_tokens(value: np.ndarray, length: int) -> np.ndarray:
    """Cuts or zero-pads the last (token) axis to ``length``."""
    value = value[..., :length]
    pad = length - value.shape[-1]
    if pad:
        value = np.pad(value, [(0, 0)] * (value.ndim - 1) + [(0, pad)])
    return value


def _take_rows(
    stage: Stage, arrays: dict, meta: dict, index: np.ndarray, digests: np.ndarray, length: int
) -> dict | None:
    """The rows ``index`` (with ``digests``) of a stage file's arrays, None unless all are there."""
    have = {(int(i), str(d)) for i, d in zip(arrays["index"], arrays["row_digest"])}
    if not all((int(i), str(d)) in have for i, d in zip(index, digests)):
        return None
    where = {int(i): r for r, i in enumerate(arrays["index"])}
    rows = np.asarray([where[int(i)] for i in index])
    out = {}
    for key, value in arrays.items():
        value = value[rows]
        out[key] = fit_tokens(value, length) if key in stage.token_keys else value
    return out


def find_cached(
    stage: Stage,
    key: str,
    places: Iterable[Path],
    index: np.ndarray,
    digests: np.ndarray,
    length: int,
) -> tuple[dict, dict, Path] | None:
    """The first stage file among ``places`` with ``key`` whose rows cover ``index``."""
    for path in places:
        loaded = load_stage(path)
        if loaded is None or loaded[1].get("key") != key or "row_digest" not in loaded[0]:
            continue
        rows = _take_rows(stage, *loaded, index, digests, length)
        if rows is not None:
            return rows, loaded[1], path
    return None


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

    # Under several processes the outputs span them (gathered by distributed.fetch), and the
    # collectives must run in the same order everywhere: no compiling ahead on other threads.
    def compute(batch):
        if not stage.needs:
            return distributed.fetch(stage.compute(model, params, batch, options))
        index = np.asarray(distributed.fetch(batch.index))
        given_rows = _given_rows(given or {}, row_of, index, batch.tokens.shape[1])
        return distributed.fetch(stage.compute(model, params, batch, options, given=given_rows))

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

    ``meta`` holds ``key`` (:func:`stage_key`) and ``digests`` (:func:`row_digests` of the
    rows). ``path`` itself is reused when it holds exactly these rows; otherwise rows are taken
    from the first file in ``places`` that covers them (and saved at ``path``), else computed,
    unless ``compute`` is False (then None). ``found`` passes the result of a
    :func:`find_cached` already made, so the files are not read twice. ``given``: the results
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
            "options": {k: _plain(getattr(options, k)) for k in stage.options}}
    save_npz(path, arrays, meta)
    if progress:
        tqdm.write(f"{stage.name}: {len(indices)} instances in {timing['seconds']:.1f}s "
                   f"(compiling {timing['compile_seconds']:.1f}s, {timing['compiled']} programs, "
                   f"{timing['cache_hits']} from the cache) -> {path}")
    return arrays, meta
