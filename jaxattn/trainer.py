"""Training per the protocol: optax AMSGrad, class-weighted losses, dev model selection, checkpoints.

The attention the decoder sees during training is chosen by ``mode``:
``learned`` (the model's own), ``uniform`` (frozen at 1/len over real tokens) or ``imposed``
(another trained model's attention on the same batch, held fixed). All three go through the same
jitted step; only the attention argument of :meth:`Model.decode` differs.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxattn.config import TrainConfig
from jaxattn.core.protocol import AttentionModel, Encoded, encode, is_binary
from jaxattn.data.batching import (
    Batch,
    EncodedSplit,
    eval_batches,
    make_batch,
    num_batches,
    training_batches,
)
from jaxattn.metrics import classification_scores
from jaxattn.models.attention import uniform_attention
from jaxattn.models.model import Params


@dataclasses.dataclass(frozen=True)
class AttentionSource:
    """Which attention the decoder is given: ``learned``, ``uniform`` or ``imposed`` (from ``model``)."""

    mode: str = "learned"
    model: AttentionModel | None = None  # the imposing model (mode == "imposed")


def attention_for(
    model: AttentionModel,
    params: Params,
    enc: Encoded,
    batch: Batch,
    source: AttentionSource,
    source_params: Params | None,
) -> jnp.ndarray:
    """<float32>[B, T] the attention to decode with under ``source``."""
    if source.mode == "learned":
        return model.attend(params, enc)
    if source.mode == "uniform":
        return uniform_attention(enc.mask)
    if source.mode == "imposed":
        src = source.model
        return jax.lax.stop_gradient(src.attend(source_params, encode(src, source_params, batch)))
    raise ValueError(f"unknown attention source {source.mode!r}")


def positive_class_weight(labels: np.ndarray) -> float:
    """J&W's weight on positive examples, N / sum(y) - 1 (= #neg / #pos)."""
    labels = np.asarray(labels)
    return float(len(labels) / max(labels.sum(), 1) - 1.0)


def batch_loss(
    model: AttentionModel, logits: jnp.ndarray, batch: Batch, pos_weight: jnp.ndarray
) -> jnp.ndarray:
    """Binary: class-weighted BCE summed over the batch (J&W); else mean cross-entropy."""
    w = batch.weights
    if is_binary(model):
        y = batch.labels.astype(jnp.float32)
        per = optax.sigmoid_binary_cross_entropy(logits[:, 0], y)
        per = per * jnp.where(batch.labels == 1, pos_weight, 1.0)
        return (per * w).sum()
    per = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels)
    return (per * w).sum() / jnp.maximum(w.sum(), 1.0)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """PyTorch-style Adam(amsgrad) with L2 weight decay on everything but the attention scorer."""

    def decay_mask(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: not any(getattr(k, "key", None) == "attention" for k in path), params
        )

    return optax.chain(
        optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask),
        optax.amsgrad(cfg.learning_rate),
    )


def make_train_step(model: AttentionModel, optimizer: optax.GradientTransformation, source: AttentionSource):
    """A jitted ``step(params, opt_state, batch, pos_weight, source_params) -> (params, opt_state, loss)``."""

    def loss_fn(params, batch, pos_weight, source_params):
        enc = encode(model, params, batch)
        attn = attention_for(model, params, enc, batch, source, source_params)
        return batch_loss(model, model.decode(params, enc, attn), batch, pos_weight)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, batch, pos_weight, source_params):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, pos_weight, source_params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


@functools.partial(jax.jit, static_argnums=(0, 3))
def _predict_batch(model: AttentionModel, params, batch: Batch, source: AttentionSource, source_params):
    enc = encode(model, params, batch)
    attn = attention_for(model, params, enc, batch, source, source_params)
    return model.probs(model.decode(params, enc, attn))


def predict(
    model: AttentionModel,
    params: Params,
    split: EncodedSplit,
    batch_size: int = 256,
    buckets=(16, 32, 64, 128, 256, 512, 1024),
    source: AttentionSource = AttentionSource(),
    source_params: Params | None = None,
) -> np.ndarray:
    """<float32>[N, K] output distributions for every example of ``split``, in split order."""
    out = None
    for batch in eval_batches(split, batch_size, buckets):
        probs = np.asarray(_predict_batch(model, params, batch, source, source_params))
        if out is None:
            out = np.zeros((len(split), probs.shape[-1]), np.float32)
        real = batch.index >= 0
        out[batch.index[real]] = probs[real]
    return out


def selection_score(scores: dict[str, float], binary: bool) -> float:
    """What model selection maximises: ROC-AUC for binary tasks, accuracy otherwise."""
    return scores["auc"] if binary else scores["accuracy"]


@dataclasses.dataclass
class TrainState:
    """Everything needed to resume training after an interruption."""

    params: Params
    opt_state: Any
    best_params: Params | None
    epoch: int = 0  # epochs completed
    best_score: float = -np.inf
    best_epoch: int = -1
    history: list = dataclasses.field(default_factory=list)


def train(
    model: AttentionModel,
    params: Params,
    splits: dict[str, EncodedSplit],
    cfg: TrainConfig,
    source: AttentionSource = AttentionSource(),
    source_params: Params | None = None,
    state: TrainState | None = None,
    on_epoch_end: Callable[[TrainState], None] | None = None,
    progress: bool = True,
) -> TrainState:
    """Trains for ``cfg.epochs`` epochs (continuing ``state`` if given) and selects the best epoch.

    Each epoch's batch order comes from ``seed + epoch``, so a resumed run repeats the batches an
    uninterrupted one would have seen. ``on_epoch_end`` is where callers checkpoint.
    """
    optimizer = make_optimizer(cfg)
    if state is None:
        state = TrainState(params=params, opt_state=optimizer.init(params), best_params=None)
    step = make_train_step(model, optimizer, source)
    train_split = splits["train"]
    pos_weight = jnp.float32(positive_class_weight(train_split.labels) if is_binary(model) else 1.0)
    n_batches = num_batches(len(train_split), cfg.batch_size)
    for epoch in range(state.epoch, cfg.epochs):
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        start = time.perf_counter()
        total = jnp.zeros(())
        batches = training_batches(train_split, cfg.batch_size, rng, cfg.sort_noise, cfg.buckets)
        bar = tqdm(
            batches,
            total=n_batches,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            leave=False,
        )
        params, opt_state = state.params, state.opt_state
        state.params = state.opt_state = None  # donated to the step
        for batch in bar:
            params, opt_state, loss = step(params, opt_state, batch, pos_weight, source_params)
            total = total + loss
        total = float(total)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch + 1, "loss": total / len(train_split), "seconds": seconds}
        for name in ("dev", "test"):
            probs = predict(
                model, params, splits[name], cfg.eval_batch_size, cfg.buckets, source, source_params
            )
            record[name] = classification_scores(probs, splits[name].labels, is_binary(model))
        state.params, state.opt_state = params, opt_state
        score = selection_score(record[cfg.selection], is_binary(model))
        if state.best_params is None or score > state.best_score:
            state.best_score, state.best_epoch = score, epoch + 1
            state.best_params = jax.tree_util.tree_map(jnp.copy, params)
        state.epoch = epoch + 1
        state.history.append(record)
        if progress:
            shown = " ".join(
                f"{k}={record['dev'][k]:.4f}"
                for k in ("accuracy", "f1", "auc")
                if k in record["dev"]
            )
            tqdm.write(f"epoch {epoch + 1}: loss {record['loss']:.4f} dev {shown} ({seconds:.1f}s)")
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


def first_batch(split: EncodedSplit) -> Batch:
    """A small batch for initialising parameters."""
    return make_batch(split, [0])
