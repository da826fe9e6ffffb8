"""The one training loop: a stack of M members trained at once (a plain run is a stack of one).

Every parameter and optimizer leaf of a stack has a leading member axis ``[M, ...]``; one jitted,
``jax.vmap``-ped step updates all members (for M = 1 as fast as the unstacked step). Each member keeps its own
model selection; the whole stack is checkpointed after every epoch (one format for every caller:
``jaxattn train``, seeds, uniform / imposed attention, the diagnostic MLP and the
model-consistent adversary), so an interrupted run resumes at its last finished epoch. A training
loss that becomes non-finite stops the run with a clear error, keeping the last good checkpoint.

The attention the decoder sees is chosen by an
:class:`~jaxattn.training.objective.AttentionSource` (:mod:`jaxattn.training.objective`, with
the loss); all sources go through the same step.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxattn.core.errors import RunError
from jaxattn.core.metrics import classification_scores
from jaxattn.core.protocol import (
    AttentionModel,
    Batch,
    Params,
    encode,
    is_binary,
)
from jaxattn.data.batching import (
    EncodedSplit,
    eval_batches,
    make_batch,
    num_batches,
    stack_batches,
    training_batches,
)
from jaxattn.runtime import distributed
from jaxattn.runtime.precision import compute_params, float32_logits
from jaxattn.training.config import TrainConfig
from jaxattn.training.early_stopping import patience_ran_out
from jaxattn.training.objective import (
    LEARNED,
    AttentionSource,
    batch_loss,
    positive_class_weight,
    source_logits,
)
from jaxattn.training.optimizers import make_optimizer
from jaxattn.training.penalties import Penalty, penalty_objective
from jaxattn.training.train_state import TrainState, init_state, select_members, stack_trees


def make_train_step(
    model: AttentionModel,
    optimizer: optax.GradientTransformation,
    source: AttentionSource,
    precision: str = "float32",
    penalty: Penalty | None = None,
):
    """A jitted ``step(params, opt_state, batch, pos_weight, source_params) -> (params,
    opt_state, loss)`` for one model; ``loss`` is the batch's per-instance losses summed.
    ``precision`` ``bfloat16`` computes the forward and backward passes in bfloat16
    (:mod:`jaxattn.runtime.precision`); parameters, gradients and optimizer state stay float32.
    ``penalty`` (:mod:`jaxattn.training.penalties`) is added to the objective, not to the logged loss."""

    def loss_fn(params, batch, pos_weight, source_params):
        params = compute_params(params, precision)
        enc = encode(model, params, batch)
        logits, attn = source_logits(model, params, enc, batch, source, source_params)
        logits = float32_logits(logits)
        objective, logged = batch_loss(model, logits, batch, pos_weight)
        if penalty is not None:
            objective = objective + penalty_objective(model, penalty(batch, enc, attn), batch)
        return objective, logged

    def step(params, opt_state, batch, pos_weight, source_params):
        (_, logged), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch, pos_weight, source_params
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, logged

    return jax.jit(step, donate_argnums=(0, 1))


def over_members(step: Callable, shared: tuple[bool, ...]) -> Callable:
    """``step(params, opt_state, *args)`` of one member as one jitted step of a stack of
    members, ``jax.vmap``-ped over the member axis (``shared[i]``: argument ``i`` of ``args``
    is the same for every member).

    A plain run is a stack of one, vmapped too: on the SST-2 BiLSTM an epoch took 5.1 s vmapped
    over one member, 5.2-5.4 s for the unstacked step, and 5.6-6.0 s when the member axis was
    sliced off inside the program (the slices copied the donated parameters and moments).
    """
    step = getattr(step, "__wrapped__", step)
    axes = (0, 0, *(None if s else 0 for s in shared))
    return jax.jit(jax.vmap(step, in_axes=axes), donate_argnums=(0, 1))


def train_members(
    step: Callable[[Params, Any, Batch], tuple[Params, Any, jnp.ndarray]],
    state: TrainState,
    epochs: int,
    epoch_batches: Callable[[int], Iterator[Batch]],
    n_batches: int,
    n_instances: int,
    evaluate: Callable[[Params], tuple[np.ndarray, list[dict]]],
    on_epoch_end: Callable[[TrainState], None] | None = None,
    progress: bool = True,
    desc: str = "",
    patience: int = 0,
    score_name: str = "selection score",
    score_sign: float = 1.0,
    member_names: Sequence[str] | None = None,
) -> TrainState:
    """Runs epochs ``state.epoch .. epochs - 1`` and keeps each member's best epoch.

    Args:
      step: ``(params, opt_state, batch) -> (params, opt_state, loss <float32>[M])`` over the
        stack (jitted, donating its first two arguments); ``loss`` sums per-instance losses.
      epoch_batches: the batches of an epoch (shared ``[B, ...]`` or stacked ``[M, B, ...]``, as
        ``step`` expects), a function of the epoch so that a resumed run sees the same batches.
      n_instances: the size of the training split (the logged loss is a mean per instance).
      evaluate: stacked params -> (selection score per member <float>[M], higher is better; a
        record per member for the history).
      on_epoch_end: where callers checkpoint: after an epoch's training (``state.trained`` set,
        so that a kill during its evaluation keeps it) and after its evaluation; not called for
        an epoch whose loss is not finite.
      patience: stop once every member has gone this many epochs without a better selection
        score (:func:`~jaxattn.training.early_stopping.patience_ran_out`); 0 runs every epoch.
      score_name, score_sign, member_names: how the progress line names the selection score
        (shown times ``score_sign``: -1 shows an objective that selection negates) and each
        member (default ``member 1``, ...; none for a single member).

    Under ``jax.distributed`` (:func:`over_processes`) the state spans processes during an epoch;
    it is brought back to host arrays, the same in every process, before selection and the
    checkpoint.
    """
    for epoch in range(state.epoch, epochs):
        if patience_ran_out(state.epoch, state.best_epoch, patience):
            if progress:
                tqdm.write(f"{desc} stopped early after epoch {state.epoch} (patience {patience})")
            break
        if state.trained is None:
            _train_epoch(step, state, epoch, epochs, epoch_batches, n_batches, n_instances,
                         progress, desc)
            if on_epoch_end is not None:  # the epoch's training survives a kill while evaluating
                on_epoch_end(state)
        params = state.params
        losses = np.asarray(state.trained["losses"], np.float64)
        seconds = state.trained["seconds"]
        start = time.perf_counter()
        scores, records = evaluate(params)
        eval_seconds = time.perf_counter() - start
        scores = np.asarray(scores, np.float64)
        improved = (scores > state.best_score) | (state.best_epoch == 0)
        state.best_params = select_members(state.best_params, params, improved)
        state.best_score = np.where(improved, scores, state.best_score)
        state.best_epoch = np.where(improved, epoch + 1, state.best_epoch)
        for record, loss in zip(records, losses):
            record.update(epoch=epoch + 1, loss=float(loss), seconds=seconds,
                          eval_seconds=eval_seconds)
        state.epoch, state.trained = epoch + 1, None
        state.history.append(records)
        if progress:
            tqdm.write(epoch_line(desc, epoch + 1, epochs, score_sign * scores, losses, seconds,
                                  score_name, member_names))
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


def _train_epoch(step, state: TrainState, epoch: int, epochs: int, epoch_batches, n_batches: int,
                 n_instances: int, progress: bool, desc: str) -> None:
    """Trains epoch ``epoch`` of ``state`` in place and marks it ``trained`` (not evaluated)."""
    start = time.perf_counter()
    params, opt_state = state.params, state.opt_state
    state.params = state.opt_state = None  # donated to the step
    total = None
    bar = tqdm(epoch_batches(epoch), total=n_batches, desc=f"{desc} epoch {epoch + 1}/{epochs}",
               disable=not progress, leave=False)
    for batch in bar:
        params, opt_state, loss = step(params, opt_state, batch)
        total = loss if total is None else total + loss
    if distributed.process_count() > 1:
        params, opt_state, total = distributed.fetch((params, opt_state, total))
    losses = np.asarray(total, np.float64) / max(n_instances, 1)
    if not np.all(np.isfinite(losses)):
        raise RunError(
            f"training loss became non-finite in epoch {epoch + 1}; the checkpoint of epoch "
            f"{state.epoch} is kept; try a lower train.learning_rate"
        )
    state.params, state.opt_state = params, opt_state
    state.trained = {"losses": losses.tolist(), "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------------
# Predictions and a plain run


@functools.partial(jax.jit, static_argnums=(0, 3))
def _predict_members(model: AttentionModel, params, batch: Batch, source: AttentionSource,
                     source_params):
    def one(p):
        enc = encode(model, p, batch)
        return model.probs(source_logits(model, p, enc, batch, source, source_params)[0])

    return jax.vmap(one)(params)




def predict_members(
    model: AttentionModel,
    params: Params,
    split: EncodedSplit,
    batch_size: int = 256,
    buckets: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024),
    source: AttentionSource = LEARNED,
    source_params: Params | None = None,
) -> np.ndarray:
    """<float32>[M, N, K] every member's output distribution on every example, in split order."""
    out = None
    for batch in eval_batches(split, batch_size, tuple(buckets)):
        probs = np.asarray(_predict_members(model, params, batch, source, source_params))
        if out is None:
            out = np.zeros((probs.shape[0], len(split), probs.shape[-1]), np.float32)
        real = batch.index >= 0
        out[:, batch.index[real]] = probs[:, real]
    return out


def predict(model: AttentionModel, params: Params, split: EncodedSplit, *args, **kwargs):
    """<float32>[N, K] one model's output distributions (:func:`predict_members` of one)."""
    return predict_members(model, stack_trees([params]), split, *args, **kwargs)[0]


def epoch_line(
    desc: str,
    epoch: int,
    epochs: int,
    scores: np.ndarray,
    losses: np.ndarray,
    seconds: float,
    score_name: str = "selection score",
    member_names: Sequence[str] | None = None,
) -> str:
    """The progress line of one finished epoch, every number named: ``epoch 2/10: dev AUC
    0.9131, train loss 0.2410 (1.3s)``; one ``name: ...`` part per member of a stack.

    Args:
      scores, losses: <float>[M] each member's selection score and mean training loss.
    """
    parts = [f"{score_name} {s:.4f}, train loss {x:.4f}" for s, x in zip(scores, losses)]
    if len(parts) > 1 or member_names:
        names = member_names or [f"member {m + 1}" for m in range(len(parts))]
        parts = [f"{name}: {part}" for name, part in zip(names, parts)]
    head = f"{desc} epoch {epoch}/{epochs}".strip()
    return f"{head}: {'; '.join(parts)} ({seconds:.1f}s)"


def selection_score(scores: dict[str, float], binary: bool) -> float:
    """What model selection maximises: ROC-AUC for binary tasks, accuracy otherwise."""
    return scores["auc"] if binary else scores["accuracy"]


def train(
    model: AttentionModel,
    params: Params,
    splits: dict[str, EncodedSplit],
    cfg: TrainConfig,
    source: AttentionSource = LEARNED,
    source_params: Params | None = None,
    state: TrainState | None = None,
    on_epoch_end: Callable[[TrainState], None] | None = None,
    progress: bool = True,
    seeds: Sequence[int] | None = None,
    penalty: Penalty | None = None,
    optimizer: optax.GradientTransformation | None = None,
) -> TrainState:
    """Trains ``params`` (stacked ``[M, ...]``, one member per seed of ``seeds``; default one
    member with ``cfg.seed``) for ``cfg.epochs`` epochs and selects each member's best epoch.

    Member ``m`` sees the batches of ``seeds[m] * 1000 + epoch``: exactly what a plain run with
    that seed sees, so a resumed or stacked run repeats an uninterrupted single one.
    ``penalty`` is added to the training objective (:mod:`jaxattn.training.penalties`).
    ``optimizer``: any optax transformation of one member's gradients (default
    :func:`make_optimizer` of ``cfg``); a given ``state`` must hold its state.
    """
    seeds = [cfg.seed] if seeds is None else list(seeds)
    train_split = splits["train"]
    if optimizer is None:
        one = jax.tree_util.tree_map(lambda x: x[0], params)
        optimizer = make_optimizer(cfg, len(train_split), model, one)
    state = state or init_state(params, optimizer)
    pos_weight = jnp.float32(positive_class_weight(train_split.labels) if is_binary(model) else 1.0)
    one_step = make_train_step(model, optimizer, source, cfg.precision, penalty=penalty)
    shared = (len(seeds) == 1, True, True)
    stacked = over_members(one_step, shared)
    if distributed.process_count() > 1:
        stacked = over_processes(stacked, len(seeds), shared)

    def step(params, opt_state, batch):
        return stacked(params, opt_state, batch, pos_weight, source_params)

    def epoch_batches(epoch: int) -> Iterator[Batch]:
        streams = [
            with_dropout_keys(
                training_batches(train_split, cfg.batch_size,
                                 np.random.default_rng(s * 1000 + epoch), cfg.sort_noise,
                                 cfg.buckets),
                s, epoch,
            )
            for s in seeds
        ]
        if len(seeds) == 1:
            return streams[0]

        return (stack_batches(group) for group in zip(*streams))

    def evaluate(params):
        records = [{} for _ in seeds]
        for name in ("dev", "test"):
            split = splits[name]
            probs = predict_members(model, params, split, cfg.eval_batch_size, cfg.buckets,
                                    source, source_params)
            for record, p in zip(records, probs):
                record[name] = classification_scores(p, split.labels, is_binary(model))
        return np.asarray([selection_score(r[cfg.selection], is_binary(model))
                           for r in records]), records

    metric = "AUC" if is_binary(model) else "accuracy"
    return train_members(step, state, cfg.epochs, epoch_batches,
                         num_batches(len(train_split), cfg.batch_size), len(train_split),
                         evaluate, on_epoch_end, progress, patience=cfg.patience,
                         score_name=f"{cfg.selection} {metric}",
                         member_names=[f"seed {s}" for s in seeds] if len(seeds) > 1 else None)


def over_processes(stacked: Callable, members: int, shared: tuple[bool, ...]) -> Callable:
    """A stacked step (:func:`over_members`, same ``shared``; argument 0 after the state is the
    batch) run over the devices of every process (``jax.distributed``).

    A stack of several members that divide evenly over the devices is spread over them: each
    device trains its own members (member axis split, no communication). Otherwise the step is
    data-parallel: each batch's rows are split over the devices and the parameters replicated,
    so the jitted step sums the gradients over all of them (XLA inserts the reduction). Host
    parameters (a fresh, resumed or localized state) are placed first; the epoch's later steps
    keep them where they are. The other arguments are the same objects every step: placed once.
    """
    shardings = distributed.shardings()
    split, replicated = shardings
    spread = members > 1 and members % len(split.mesh.devices.flat) == 0
    where = split if spread else replicated
    placed: dict[int, Any] = {}

    def parallel(params, opt_state, batch, *args):
        if getattr(jax.tree_util.tree_leaves(params)[0], "sharding", None) != where:
            params, opt_state = distributed.place((params, opt_state), where)
        if spread:
            batch = distributed.place(batch, replicated if shared[0] else split)
        else:
            batch = distributed.place_batch(batch, shardings, member_axis=not shared[0])
        for arg, is_shared in zip(args, shared[1:]):
            if id(arg) not in placed:
                placed[id(arg)] = (arg, distributed.place(arg, split if spread and not is_shared
                                                          else replicated))
        return stacked(params, opt_state, batch, *(placed[id(a)][1] for a in args))

    return parallel


def with_dropout_keys(batches: Iterator[Batch], seed: int, epoch: int) -> Iterator[Batch]:
    """``batches`` with a dropout key each, a function of (seed, epoch, batch number) alone, so
    a resumed run draws the same dropout masks (models without dropout ignore it)."""
    for i, batch in enumerate(batches):
        key = np.asarray([seed, (epoch << 20) + i], np.uint32)  # a raw threefry key
        yield batch.replace(dropout_key=key)


def first_batch(split: EncodedSplit) -> Batch:
    """A small batch for initialising parameters."""
    return make_batch(split, [0])
