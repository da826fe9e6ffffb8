"""Training a stack of models at once, and how far they lie from a base model, instance by instance.

Members of a stack (the extra seeds of W&P's variance baseline here, the lambdas of
:mod:`jaxattn.adversarial_training`) share one architecture: every parameter and optimizer leaf gets
a leading member axis ``[M, ...]`` and one jitted, ``jax.vmap``-ped step updates them all. Each
member keeps its own model selection, and the whole stack is checkpointed after every epoch, so an
interrupted stack resumes at its last finished epoch.

:func:`train_seeds` retrains a config with other ``train.seed`` values, every seed ending as an
ordinary run directory that :func:`jaxattn.run.load_run` reads. Two ways, the same result:

* ``vmap``: all seeds as one stack. Each seed keeps its own initialisation *and* its own batch
  order, exactly what ``jaxattn train`` with that seed does; the members' batches are padded to the
  longest of them and stacked (padding does not change a row's outputs, but it is work).
* ``sequential``: one seed after another through :func:`jaxattn.run.train_run` (its own resume).

``auto`` (the default) takes ``vmap`` on an accelerator, where a stack of M small models costs little
more than one, and ``sequential`` on a CPU, where it does not: on 2 cores, one epoch of the synthetic
BiLSTM config took 2.4 s per seed one by one (19 s for 8), 22 s for a stack of 8 sharing batches and
53 s with each seed's own batch order (padding to the longest of 8 batches); for the SST-2 config
13 s per seed one by one against 110 s for a stack of 8 sharing batches.

:func:`compare_members` gives, per test instance, the JSD between each member's attention and the
base model's and the TVD between their output distributions (W&P's "expected variance").
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from tqdm.auto import tqdm

from jaxattn.config import Config, ConfigError, dump_config
from jaxattn.core.protocol import encode, forward, is_binary
from jaxattn.data.batching import (
    Batch,
    EncodedSplit,
    eval_batches,
    num_batches,
    stack_batches,
    training_batches,
)
from jaxattn.data.prepare import Prepared
from jaxattn.metrics import classification_scores, jsd, kl, tvd
from jaxattn.models.model import Model, Params
from jaxattn.run import initial_params, load_run, model_for, train_run, write_atomic, write_json
from jaxattn.trainer import (
    AttentionSource,
    attention_for,
    make_optimizer,
    make_train_step,
    positive_class_weight,
    selection_score,
)

SEED_MODES = ("auto", "vmap", "sequential")
LEARNED = AttentionSource("learned")


# --------------------------------------------------------------------------------------------
# Stacks of pytrees and batches


def stack_trees(trees: Sequence[Any]) -> Any:
    """Stacks equally shaped pytrees on a new leading member axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree: Any, m: int) -> Any:
    """Member ``m`` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[m], tree)


# --------------------------------------------------------------------------------------------
# Training a stack


@dataclasses.dataclass
class StackState:
    """Training state of M members: stacked params/optimizer state and per-member selection."""

    params: Params
    opt_state: Any
    best_params: Params
    best_score: np.ndarray  # <float64>[M]
    best_epoch: np.ndarray  # <int64>[M], 0 = none yet
    epoch: int = 0
    history: list = dataclasses.field(default_factory=list)  # per epoch, a record per member


def init_stack_state(params: Params, optimizer: optax.GradientTransformation) -> StackState:
    m = jax.tree_util.tree_leaves(params)[0].shape[0]
    return StackState(
        params=params,
        opt_state=jax.vmap(optimizer.init)(params),
        best_params=jax.tree_util.tree_map(jnp.copy, params),
        best_score=np.full(m, -np.inf),
        best_epoch=np.zeros(m, np.int64),
    )


def save_stack_state(path: Path, state: StackState, meta: dict) -> None:
    """Writes ``state`` atomically; ``meta`` identifies what it trains (checked on restore)."""
    data = {
        "params": serialization.to_state_dict(state.params),
        "opt_state": serialization.to_state_dict(state.opt_state),
        "best_params": serialization.to_state_dict(state.best_params),
        "best_score": np.asarray(state.best_score),
        "best_epoch": np.asarray(state.best_epoch),
        "epoch": state.epoch,
        "history": json.dumps(state.history),
        "meta": json.dumps(meta, sort_keys=True),
    }
    write_atomic(path, serialization.msgpack_serialize(data))


def load_stack_state(path: Path, template: StackState, meta: dict) -> StackState | None:
    """The state saved at ``path`` if it trains the same ``meta``, else None."""
    if not path.exists():
        return None
    data = serialization.msgpack_restore(path.read_bytes())
    if data.get("meta") != json.dumps(meta, sort_keys=True):
        return None
    return StackState(
        params=serialization.from_state_dict(template.params, data["params"]),
        opt_state=serialization.from_state_dict(template.opt_state, data["opt_state"]),
        best_params=serialization.from_state_dict(template.params, data["best_params"]),
        best_score=np.asarray(data["best_score"], np.float64),
        best_epoch=np.asarray(data["best_epoch"], np.int64),
        epoch=int(data["epoch"]),
        history=json.loads(data["history"]),
    )


def _select(best: Params, new: Params, improved: np.ndarray) -> Params:
    """Per member: ``new`` where ``improved`` else ``best``."""

    def pick(b, n):
        keep = jnp.asarray(improved).reshape((-1,) + (1,) * (n.ndim - 1))
        return jnp.where(keep, n, b)

    return jax.tree_util.tree_map(pick, best, new)


def train_stack(
    step: Callable[[Params, Any, Batch], tuple[Params, Any, jnp.ndarray]],
    state: StackState,
    epochs: int,
    epoch_batches: Callable[[int], Iterator[Batch]],
    n_batches: int,
    evaluate: Callable[[Params], tuple[np.ndarray, list[dict]]],
    on_epoch_end: Callable[[StackState], None] | None = None,
    progress: bool = True,
    desc: str = "",
) -> StackState:
    """Runs epochs ``state.epoch .. epochs - 1`` and keeps each member's best epoch.

    Args:
      step: ``(params, opt_state, batch) -> (params, opt_state, loss <float32>[M])`` over the stack
        (jitted, donating its first two arguments).
      epoch_batches: the batches of an epoch (shared ``[B, ...]`` or stacked ``[M, B, ...]``, as
        ``step`` expects), a function of the epoch so that a resumed run sees the same batches.
      evaluate: stacked params -> (selection score per member <float>[M], higher is better; a
        record per member for the history).
    """
    for epoch in range(state.epoch, epochs):
        start = time.perf_counter()
        params, opt_state = state.params, state.opt_state
        state.params = state.opt_state = None  # donated to the step
        total = None
        bar = tqdm(epoch_batches(epoch), total=n_batches, desc=f"{desc} epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for batch in bar:
            params, opt_state, loss = step(params, opt_state, batch)
            total = loss if total is None else total + loss
        seconds = time.perf_counter() - start
        scores, records = evaluate(params)
        scores = np.asarray(scores, np.float64)
        improved = (scores > state.best_score) | (state.best_epoch == 0)
        state.best_params = _select(state.best_params, params, improved)
        state.best_score = np.where(improved, scores, state.best_score)
        state.best_epoch = np.where(improved, epoch + 1, state.best_epoch)
        losses = np.asarray(total) / max(n_batches, 1)
        for record, loss in zip(records, losses):
            record.update(epoch=epoch + 1, loss=float(loss), seconds=seconds)
        state.params, state.opt_state = params, opt_state
        state.epoch = epoch + 1
        state.history.append(records)
        if progress:
            shown = " ".join(f"{s:.4f}" for s in scores)
            tqdm.write(f"{desc} epoch {epoch + 1}: selection scores {shown} ({seconds:.1f}s)")
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


# --------------------------------------------------------------------------------------------
# Run directories


def is_finished_run(path: Path) -> bool:
    return (path / "metrics.json").exists() and (path / "params.msgpack").exists()


def write_run(out: Path, cfg: Config, prepared: Prepared, params: Params, metrics: dict) -> None:
    """Writes a finished run directory that :func:`jaxattn.run.load_run` reads (metrics last)."""
    write_atomic(out / "vocab.json", json.dumps(prepared.vocab.itos, ensure_ascii=False))
    write_json(out / "data.json", prepared.info())
    write_atomic(out / "config.toml", dump_config(cfg))
    write_atomic(out / "params.msgpack", serialization.to_bytes(params))
    write_json(out / "metrics.json", metrics)


def member_metrics(
    state: StackState, m: int, cfg: Config, prepared: Prepared, embeddings: dict, elapsed: float
) -> dict:
    """The ``metrics.json`` fields member ``m`` of a trained stack shares with ``jaxattn train``:
    its best epoch's dev/test records, the per-epoch history, timings, embeddings, model, data.

    ``train_seconds`` is the whole stack's (the members trained together).
    """
    history = [records[m] for records in state.history]
    best_epoch = int(state.best_epoch[m])
    best = history[best_epoch - 1]
    return {
        "test": best["test"],
        "dev": best["dev"],
        "best_epoch": best_epoch,
        "epochs": history,
        "train_seconds": sum(records[0]["seconds"] for records in state.history),
        "wall_seconds_this_session": elapsed,
        "embeddings": embeddings,
        "model": {"encoder": cfg.model.encoder, "attention": cfg.model.attention},
        "data": prepared.info(),
    }


def load_stacked_params(dirs: Sequence[Path]) -> Params:
    """The selected parameters of several run directories, stacked."""
    return stack_trees([load_run(d).params for d in dirs])


# --------------------------------------------------------------------------------------------
# Predictions and per-instance comparison


@functools.partial(jax.jit, static_argnums=(0, 3))
def _predict_stack_batch(model: Model, params: Params, batch: Batch, source: AttentionSource):
    def one(p):
        enc = encode(model, p, batch)
        return model.probs(model.decode(p, enc, attention_for(model, p, enc, batch, source, None)))

    return jax.vmap(one)(params)


def predict_stack(
    model: Model,
    params: Params,
    split: EncodedSplit,
    batch_size: int = 256,
    buckets: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024),
    source: AttentionSource = LEARNED,
) -> np.ndarray:
    """<float32>[M, N, K] every member's output distribution on every example of ``split``."""
    out = None
    for batch in eval_batches(split, batch_size, tuple(buckets)):
        probs = np.asarray(_predict_stack_batch(model, params, batch, source))
        if out is None:
            out = np.zeros((probs.shape[0], len(split), probs.shape[-1]), np.float32)
        real = batch.index >= 0
        out[:, batch.index[real]] = probs[:, real]
    return out


@dataclasses.dataclass
class Comparison:
    """Per-instance distances between M members and a base model on one split.

    Attributes:
      jsd: <float32>[M, N] JSD(member attention, base attention), nats, real tokens only.
      kl: <float32>[M, N] KL(member attention || base attention + eps).
      tvd: <float32>[M, N] TVD between the output distributions.
      probs: <float32>[M, N, K] the members' output distributions.
      base_probs: <float32>[N, K] the base model's.
      max_attn: <float32>[N] the base model's largest attention weight.
    """

    jsd: np.ndarray
    kl: np.ndarray
    tvd: np.ndarray
    probs: np.ndarray
    base_probs: np.ndarray
    max_attn: np.ndarray

    def save(self, path: Path) -> None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **dataclasses.asdict(self))
        write_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Comparison:
        with np.load(path) as data:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@functools.partial(jax.jit, static_argnums=0)
def _compare_batch(model: Model, base_params: Params, params: Params, batch: Batch, kl_eps):
    base_logits, base_attn = forward(model, base_params, batch)
    logits, attn = jax.vmap(lambda p: forward(model, p, batch))(params)  # [M, B, C], [M, B, T]
    base_probs = model.probs(base_logits)
    probs = jax.vmap(model.probs)(logits)
    return {
        "jsd": jsd(attn, base_attn[None]),
        "kl": kl(attn, base_attn[None], eps=kl_eps),
        "tvd": tvd(probs, base_probs[None]),
        "probs": probs,
        "base_probs": base_probs,
        "max_attn": base_attn.max(axis=-1),
    }


def compare_members(
    model: Model,
    base_params: Params,
    params: Params,
    split: EncodedSplit,
    batch_size: int = 256,
    buckets: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024),
    kl_eps: float = 0.0,
) -> Comparison:
    """Compares every member of the stack ``params`` with ``base_params`` on every instance."""
    out: dict[str, np.ndarray] = {}
    for batch in eval_batches(split, batch_size, tuple(buckets)):
        res = jax.device_get(_compare_batch(model, base_params, params, batch, jnp.float32(kl_eps)))
        real = batch.index >= 0
        idx = batch.index[real]
        for name, value in res.items():
            member_axis = name in ("jsd", "kl", "tvd", "probs")
            if name not in out:
                shape = (value.shape[0], len(split)) if member_axis else (len(split),)
                out[name] = np.zeros(shape + value.shape[2 if member_axis else 1 :], np.float32)
            if member_axis:
                out[name][:, idx] = value[:, real]
            else:
                out[name][idx] = value[real]
    return Comparison(**out)


# --------------------------------------------------------------------------------------------
# W&P's seed baseline


def resolve_seed_mode(mode: str) -> str:
    """``auto`` -> ``vmap`` on an accelerator, ``sequential`` on a CPU (see the module docstring)."""
    if mode not in SEED_MODES:
        raise ConfigError(f"seed mode {mode!r} is not one of {', '.join(SEED_MODES)}")
    if mode == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "vmap"
    return mode


def seed_config(cfg: Config, seed: int) -> Config:
    """``cfg`` with ``train.seed = seed``."""
    out = copy.deepcopy(cfg)
    out.train.seed = seed
    return out


def seed_dir(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def train_seeds(
    cfg: Config,
    seeds: Sequence[int],
    prepared: Prepared,
    out_dir: str | Path,
    mode: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Trains ``cfg`` once per seed into ``out_dir/seed_<s>`` (finished seeds are kept).

    Returns the run directories, in the order of ``seeds``.
    """
    mode = resolve_seed_mode(mode)
    out_dir = Path(out_dir)
    dirs = [seed_dir(out_dir, s) for s in seeds]
    pending = [s for s, d in zip(seeds, dirs) if not is_finished_run(d)]
    if pending and mode == "sequential":
        for s in tqdm(pending, desc="seeds", disable=not progress):
            train_run(seed_config(cfg, s), seed_dir(out_dir, s), progress=progress, prepared=prepared)
    elif pending:
        _train_seed_stack(cfg, pending, prepared, out_dir, progress)
    return dirs


def _train_seed_stack(
    cfg: Config, seeds: Sequence[int], prepared: Prepared, out_dir: Path, progress: bool
) -> None:
    if cfg.train.attention not in ("learned", "uniform"):
        raise ConfigError("stacked seed training supports train.attention learned or uniform")
    tc = cfg.train
    model = model_for(cfg, prepared, len(prepared.vocab))
    inits = [initial_params(seed_config(cfg, s), model, prepared) for s in seeds]
    embeddings = inits[0][1]
    optimizer = make_optimizer(tc)
    state = init_stack_state(stack_trees([p for p, _ in inits]), optimizer)
    ckpt = out_dir / "seeds_checkpoint.msgpack"
    meta = {"config": cfg.to_dict(), "seeds": list(seeds)}
    state = load_stack_state(ckpt, state, meta) or state

    source = AttentionSource(tc.attention)
    one_step = make_train_step(model, optimizer, source)
    stacked_step = jax.jit(jax.vmap(one_step, in_axes=(0, 0, 0, None, None)), donate_argnums=(0, 1))
    train_split = prepared.splits["train"]
    pos_weight = jnp.float32(positive_class_weight(train_split.labels) if is_binary(model) else 1.0)

    def step(params, opt_state, batch):
        return stacked_step(params, opt_state, batch, pos_weight, None)

    def epoch_batches(epoch: int) -> Iterator[Batch]:
        # Seed s sees the batches `jaxattn train` with train.seed = s would (see jaxattn.trainer.train).
        streams = [
            training_batches(train_split, tc.batch_size, np.random.default_rng(s * 1000 + epoch),
                             tc.sort_noise, tc.buckets)
            for s in seeds
        ]
        for group in zip(*streams):
            yield stack_batches(group)

    def evaluate(params):
        records = [{} for _ in seeds]
        for name in ("dev", "test"):
            split = prepared.splits[name]
            probs = predict_stack(model, params, split, tc.eval_batch_size, tc.buckets, source)
            for record, p in zip(records, probs):
                record[name] = classification_scores(p, split.labels, is_binary(model))
        scores = [selection_score(r[tc.selection], is_binary(model)) for r in records]
        return np.asarray(scores), records

    start = time.perf_counter()
    state = train_stack(
        step, state, tc.epochs, epoch_batches, num_batches(len(train_split), tc.batch_size), evaluate,
        on_epoch_end=lambda st: save_stack_state(ckpt, st, meta), progress=progress,
        desc=f"seeds {seeds[0]}..{seeds[-1]}",
    )
    elapsed = time.perf_counter() - start
    for m, s in enumerate(seeds):
        metrics = member_metrics(state, m, cfg, prepared, embeddings, elapsed)
        metrics.update(
            selection=tc.selection,
            selection_metric="auc" if is_binary(model) else "accuracy",
            train_examples_per_second=len(train_split) * len(metrics["epochs"]) * len(seeds)
            / max(metrics["train_seconds"], 1e-9),
            attention=tc.attention,
            trained_as=f"stack of {len(seeds)} seeds ({', '.join(map(str, seeds))}), vmapped",
        )
        write_run(seed_dir(out_dir, s), seed_config(cfg, s), prepared, member(state.best_params, m),
                  metrics)
    ckpt.unlink(missing_ok=True)
