"""Training any :class:`~jaxattn.core.protocol.AttentionModel` into a folder: ``jaxattn.train``.

The model is yours (its own Flax module, satisfying the protocol); the loop, the class-weighted
losses, dev-split model selection and the per-epoch checkpoint are jaxattn's
(:func:`jaxattn.training.trainer.train`). The folder holds ``params.msgpack`` (the selected parameters),
``metrics.json`` and ``checkpoint.msgpack`` (the resume point); it is locked while training, and
a rerun resumes from the checkpoint or returns the finished result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import optax
from flax import serialization

from jaxattn.config import Config, ConfigError, DataConfig, TrainConfig, check_sections
from jaxattn.core.checks import check_model, check_model_outputs
from jaxattn.core.errors import RunError
from jaxattn.core.protocol import (
    AttentionModel,
    Params,
    is_binary,
)
from jaxattn.data.batching import eval_batches, make_batch
from jaxattn.data.dataset import Dataset
from jaxattn.data.prepare import Prepared, prepare
from jaxattn.data.vocab import Vocab
from jaxattn.runtime.compile_cache import enable_compilation_cache
from jaxattn.runtime.compile_stats import CompileCounter
from jaxattn.runtime.files import read_json, write_atomic, write_json
from jaxattn.runtime.lock import run_lock
from jaxattn.training.objective import LEARNED, AttentionSource
from jaxattn.training.optimizers import make_optimizer
from jaxattn.training.penalties import Penalty, split_conicity
from jaxattn.training.train_state import (
    TrainState,
    init_state,
    load_checkpoint,
    member,
    save_checkpoint,
    stack_trees,
)
from jaxattn.training.trainer import first_batch, train


def canonical_bytes(params: Params) -> bytes:
    """msgpack of ``params`` with every dict's keys sorted: equal values give equal bytes,
    however the tree was built (a resumed run's key order is not a fresh one's)."""

    def sort(tree):
        if isinstance(tree, dict):
            return {k: sort(tree[k]) for k in sorted(tree)}
        return tree

    return serialization.msgpack_serialize(sort(serialization.to_state_dict(params)))


def read_params(path: Path, template: Params) -> Params:
    """Parameters saved at ``path`` shaped like ``template``; a damaged file or another shape
    is a one-line RunError."""
    try:
        raw = path.read_bytes()
        params = serialization.from_bytes(template, raw)
    except OSError as err:
        raise RunError(f"{path}: cannot be read ({err.strerror})") from None
    except Exception as err:  # msgpack errors of a damaged file, structure mismatches
        raise RunError(f"{path}: damaged or of another model ({type(err).__name__})") from None
    for (kp, got), want in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                               jax.tree_util.tree_leaves(template)):
        if getattr(got, "shape", None) != getattr(want, "shape", None):
            raise RunError(
                f"{path}: {jax.tree_util.keystr(kp)} has shape {getattr(got, 'shape', None)}, "
                f"the config's model needs {want.shape}; the params belong to another config"
            )
    return params


def write_result(out: Path, params: Params, metrics: dict) -> None:
    """The selected parameters, then ``metrics.json`` (its presence marks a finished run)."""
    write_atomic(out / "params.msgpack", canonical_bytes(params))
    write_json(out / "metrics.json", metrics)


def run_metrics(state: TrainState, m: int, cfg: TrainConfig, model, data: Prepared,
                elapsed: float) -> dict:
    """``metrics.json`` of member ``m``: its best epoch's dev/test scores, history, timings."""
    history = state.member_history(m)
    best_epoch = int(state.best_epoch[m])
    best = history[best_epoch - 1]
    train_seconds = sum(r["seconds"] for r in history)
    n_train = len(data.splits["train"])
    return {
        "test": best["test"],
        "dev": best["dev"],
        "best_epoch": best_epoch,
        "selection": cfg.selection,
        "selection_metric": "auc" if is_binary(model) else "accuracy",
        "epochs": history,
        "train_seconds": train_seconds,
        "train_examples_per_second": n_train * len(history) / max(train_seconds, 1e-9),
        "wall_seconds_this_session": elapsed,
        "data": data.info(),
    }


def checkpoint_meta(cfg: TrainConfig) -> dict:
    """What a plain run's checkpoint must match to be resumed: the training config, except the
    epochs and patience that may grow. With ``adamw`` the epochs stay (the learning-rate schedule
    spans them); with ``amsgrad`` the optimizer keys are left out, as before they existed."""
    drop = {"patience"}
    if cfg.optimizer != "adamw":
        drop |= {"epochs", "optimizer", "warmup_fraction"}
    return {"members": 1,
            "train": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in drop}}


def state_signature(opt_state) -> str:
    """A digest of an optimizer state's structure: every leaf's path, shape and dtype."""
    rows = [f"{jax.tree_util.keystr(path)} {np.shape(leaf)} {getattr(leaf, 'dtype', '')}"
            for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]]
    return "state " + hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def check_train_config(config: TrainConfig | Config, source: str = "jaxattn.train") -> TrainConfig:
    """``config``'s training section, checked as a config file's is (one line naming the key)."""
    if isinstance(config, Config):
        check_sections(config, ("train",), source)
        return config.train
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"{source}: config must be a TrainConfig or Config, got "
                          f"{type(config).__name__}")
    check_sections(Config(train=config), ("train",), source)
    return config


def prepare_data(
    cfg: DataConfig, vocab: Vocab | None = None, dataset: Dataset | None = None
) -> Prepared:
    """:func:`jaxattn.data.prepare.prepare` of ``cfg`` once its keys pass the checks a config
    file's ``[data]`` passes (one line naming the key): ``jaxattn.prepare_data``."""
    if not isinstance(cfg, DataConfig):
        raise ConfigError(f"jaxattn.prepare_data: expected a DataConfig, got {type(cfg).__name__}")
    check_sections(Config(data=cfg), ("data",), "jaxattn.prepare_data")
    return prepare(cfg, vocab=vocab, dataset=dataset)


def train_model(
    model: AttentionModel,
    data: Prepared,
    config: TrainConfig | Config,
    out,
    params: Params | None = None,
    progress: bool = True,
    source: AttentionSource = LEARNED,
    source_params: Params | None = None,
    extra: dict | None = None,
    on_start: Callable[[], None] | None = None,
    penalty: Penalty | None = None,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[Params, dict]:
    """Trains ``model`` on ``data`` per ``config`` into the folder ``out``.

    Args:
      params: initial parameters (default ``model.init`` with ``config.seed``).
      source, source_params: the attention the decoder sees (learned, uniform or imposed).
      extra: more fields for ``metrics.json``.
      on_start: called once everything is checked (the checkpoint included), before training:
        where a caller writes its own files, so that a failed start writes nothing.
      penalty: added to the training loss (:mod:`jaxattn.training.penalties`: conicity, deception).
      optimizer: any ``optax.GradientTransformation`` of the parameters' gradients (layer-wise
        learning rates, frozen parameters via ``optax.multi_transform`` ...); it replaces the
        one ``config`` describes (:func:`~jaxattn.training.optimizers.make_optimizer`), whose learning
        rate, weight decay and schedule are then unused. Its state is checkpointed; resume with
        the same optimizer (only the shapes of its state are checked).
    Returns:
      (the parameters of the selected epoch, the metrics also written to ``out/metrics.json``).
    """
    enable_compilation_cache()
    # Decoding with another attention source (uniform, imposed) needs the pooling seam; a
    # base-only model (a [CLS] head) trains on its own logits.
    model = check_model(model, needs=() if source.mode == "learned" else ("pooling",))
    cfg = check_train_config(config)
    out = Path(out)
    with run_lock(out, "jaxattn.train"):
        init = params
        if init is None:
            init = model.init(jax.random.key(cfg.seed), first_batch(data.splits["train"]))
        # Outputs of the wrong shape, or attention that is no distribution, would train silently.
        train_split = data.splits["train"]
        check_model_outputs(model, init, make_batch(train_split, range(min(8, len(train_split)))),
                            num_classes=len(data.dataset.label_names))
        finished = (out / "metrics.json").exists() and (out / "params.msgpack").exists()
        if finished and len(read_json(out / "metrics.json").get("epochs", [])) >= cfg.epochs:
            return read_params(out / "params.msgpack", init), read_json(out / "metrics.json")
        ckpt = out / "checkpoint.msgpack"
        if optimizer is None:
            optimizer = make_optimizer(cfg, len(data.splits["train"]), model, init)
            template = init_state(stack_trees([init]), optimizer)
            meta = checkpoint_meta(cfg)
        else:
            template = init_state(stack_trees([init]), optimizer)
            meta = {**checkpoint_meta(cfg), "optimizer": state_signature(template.opt_state)}
        state = load_checkpoint(ckpt, template, meta, strict=True) or template
        if on_start is not None:
            on_start()

        start = time.perf_counter()
        with CompileCounter() as counted:
            state = train(model, template.params, data.splits, cfg, source, source_params, state,
                          lambda st: save_checkpoint(ckpt, st, meta), progress, penalty=penalty,
                          optimizer=optimizer)
        metrics = {**run_metrics(state, 0, cfg, model, data, time.perf_counter() - start),
                   **(extra or {})}
        metrics["data"] = data.info()
        best = member(state.best_params, 0)
        conicity_start = time.perf_counter()
        metrics["test_conicity"] = split_conicity(
            model, best, eval_batches(data.splits["test"], cfg.eval_batch_size, cfg.buckets))
        # Where this session's time went: the XLA programs training and evaluation compiled
        # (their compile time is inside the epochs' seconds), and the conicity pass.
        metrics["compilation"] = counted.stats.as_dict()
        metrics["conicity_seconds"] = time.perf_counter() - conicity_start
        write_result(out, best, metrics)
        return best, metrics
