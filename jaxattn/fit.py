"""Training any :class:`~jaxattn.core.protocol.AttentionModel` into a folder: ``jaxattn.train``.

The model is yours (its own Flax module, satisfying the protocol); the loop, the class-weighted
losses, dev-split model selection and the per-epoch checkpoint are jaxattn's
(:func:`jaxattn.trainer.train`). The folder holds ``params.msgpack`` (the selected parameters),
``metrics.json`` and ``checkpoint.msgpack`` (the resume point); it is locked while training, and
a rerun resumes from the checkpoint or returns the finished result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
from flax import serialization

from jaxattn.config import Config, TrainConfig
from jaxattn.core.protocol import AttentionModel, Params, check_model, is_binary
from jaxattn.data.prepare import Prepared
from jaxattn.errors import RunError
from jaxattn.runs.files import read_json, write_atomic, write_json
from jaxattn.runs.lock import run_lock
from jaxattn.trainer import AttentionSource, TrainState, first_batch, make_optimizer, train

LEARNED = AttentionSource()


def state_dict(state: TrainState) -> dict:
    """The checkpoint of a training state (one msgpack-able dict; history as JSON)."""
    return {
        "params": serialization.to_state_dict(state.params),
        "opt_state": serialization.to_state_dict(state.opt_state),
        "best_params": serialization.to_state_dict(state.best_params),
        "epoch": state.epoch,
        "best_score": state.best_score,
        "best_epoch": state.best_epoch,
        "history": json.dumps(state.history),
    }


def restore_state(template: TrainState, raw: bytes) -> TrainState:
    data = serialization.msgpack_restore(raw)
    return TrainState(
        params=serialization.from_state_dict(template.params, data["params"]),
        opt_state=serialization.from_state_dict(template.opt_state, data["opt_state"]),
        best_params=serialization.from_state_dict(template.params, data["best_params"]),
        epoch=int(data["epoch"]),
        best_score=float(data["best_score"]),
        best_epoch=int(data["best_epoch"]),
        history=json.loads(data["history"]),
    )


def _restore(template: TrainState, raw: bytes, path) -> TrainState:
    try:
        return restore_state(template, raw)
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(
            f"{path}: damaged or of another model ({type(err).__name__}); delete it to restart"
        ) from None


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
) -> tuple[Params, dict]:
    """Trains ``model`` on ``data`` per ``config`` into the folder ``out``.

    Args:
      params: initial parameters (default ``model.init`` with ``config.seed``).
      source, source_params: the attention the decoder sees (learned, uniform or imposed).
      extra: more fields for ``metrics.json``.
    Returns:
      (the parameters of the selected epoch, the metrics also written to ``out/metrics.json``).
    """
    model = check_model(model)
    cfg = config.train if isinstance(config, Config) else config
    out = Path(out)
    with run_lock(out, "jaxattn.train"):
        finished = (out / "metrics.json").exists() and (out / "params.msgpack").exists()
        if finished and len(read_json(out / "metrics.json").get("epochs", [])) >= cfg.epochs:
            template = model.init(jax.random.key(cfg.seed), first_batch(data.splits["train"]))
            raw = (out / "params.msgpack").read_bytes()
            try:
                done = serialization.from_bytes(template, raw)
            except (ValueError, KeyError, TypeError) as err:
                raise RunError(f"{out}/params.msgpack: damaged ({type(err).__name__})") from None
            return done, read_json(out / "metrics.json")
        if params is None:
            params = model.init(jax.random.key(cfg.seed), first_batch(data.splits["train"]))
        ckpt = out / "checkpoint.msgpack"
        template = TrainState(params, make_optimizer(cfg).init(params), params)
        state = _restore(template, ckpt.read_bytes(), ckpt) if ckpt.exists() else None

        def save(state: TrainState) -> None:
            write_atomic(ckpt, serialization.msgpack_serialize(state_dict(state)))

        start = time.perf_counter()
        state = train(model, params, data.splits, cfg, source, source_params, state, save,
                      progress)
        elapsed = time.perf_counter() - start
        best = state.history[state.best_epoch - 1]
        train_seconds = sum(r["seconds"] for r in state.history)
        n_train = len(data.splits["train"])
        metrics = {
            "test": best["test"],
            "dev": best["dev"],
            "best_epoch": state.best_epoch,
            "selection": cfg.selection,
            "selection_metric": "auc" if is_binary(model) else "accuracy",
            "epochs": state.history,
            "train_seconds": train_seconds,
            "train_examples_per_second": n_train * len(state.history) / max(train_seconds, 1e-9),
            "wall_seconds_this_session": elapsed,
            **(extra or {}),
            "data": data.info(),
        }
        write_atomic(out / "params.msgpack", serialization.to_bytes(state.best_params))
        write_json(out / "metrics.json", metrics)
        return state.best_params, metrics
