"""The state of a stack of M members being trained, and its checkpoint (one format for every
caller of :func:`jaxattn.training.trainer.train_members`).

Every parameter and optimizer leaf has a leading member axis ``[M, ...]``; each member keeps its
own model selection (best score, epoch and parameters).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from jaxattn.core.errors import RunError
from jaxattn.core.protocol import Params
from jaxattn.runtime.files import write_atomic


def stack_trees(trees: Sequence[Any]) -> Any:
    """Stacks equally shaped pytrees on a new leading member axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree: Any, m: int) -> Any:
    """Member ``m`` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[m], tree)


@dataclasses.dataclass
class TrainState:
    """Training state of M members: stacked params / optimizer state and per-member selection."""

    params: Params
    opt_state: Any
    best_params: Params
    best_score: np.ndarray  # <float64>[M]
    best_epoch: np.ndarray  # <int64>[M], 0 = none yet
    epoch: int = 0
    history: list = dataclasses.field(default_factory=list)  # per epoch, a record per member
    # Epoch ``epoch + 1`` trained into ``params`` / ``opt_state`` but not yet evaluated:
    # {"losses": [M] mean training loss per member, "seconds": its training time}. Checkpointed
    # so that a kill during a long evaluation does not lose the epoch's training.
    trained: dict | None = None

    def member_history(self, m: int) -> list[dict]:
        return [records[m] for records in self.history]


def init_state(params: Params, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh state for stacked ``params`` ``[M, ...]``."""
    m = jax.tree_util.tree_leaves(params)[0].shape[0]
    return TrainState(
        params=params,
        opt_state=jax.vmap(optimizer.init)(params),
        best_params=jax.tree_util.tree_map(jnp.copy, params),
        best_score=np.full(m, -np.inf),
        best_epoch=np.zeros(m, np.int64),
    )


def save_checkpoint(path: Path, state: TrainState, meta: dict) -> None:
    """Writes ``state`` atomically; ``meta`` identifies what it trains (checked on restore)."""
    data = {
        "params": serialization.to_state_dict(state.params),
        "opt_state": serialization.to_state_dict(state.opt_state),
        "best_params": serialization.to_state_dict(state.best_params),
        "best_score": np.asarray(state.best_score),
        "best_epoch": np.asarray(state.best_epoch),
        "epoch": state.epoch,
        "history": json.dumps(state.history),
        "trained": json.dumps(state.trained),
        "meta": json.dumps(meta, sort_keys=True),
    }
    write_atomic(path, serialization.msgpack_serialize(data))


def load_checkpoint(
    path: Path, template: TrainState, meta: dict, strict: bool = False
) -> TrainState | None:
    """The state saved at ``path`` if it trains the same ``meta``, else None (``strict``: a
    RunError). A damaged file is always a RunError: it is reported, never silently dropped."""
    if not path.exists():
        return None
    try:
        data = serialization.msgpack_restore(path.read_bytes())
        if data.get("meta") != json.dumps(meta, sort_keys=True):
            if strict:
                raise RunError(
                    f"{path}: a checkpoint of another config or format; delete it to start over"
                )
            return None
        return TrainState(
            params=serialization.from_state_dict(template.params, data["params"]),
            opt_state=serialization.from_state_dict(template.opt_state, data["opt_state"]),
            best_params=serialization.from_state_dict(template.params, data["best_params"]),
            best_score=np.asarray(data["best_score"], np.float64),
            best_epoch=np.asarray(data["best_epoch"], np.int64),
            epoch=int(data["epoch"]),
            history=json.loads(data["history"]),
            trained=json.loads(data.get("trained", "null")),
        )
    except RunError:
        raise
    except Exception as err:  # msgpack, shape and structure errors of a damaged file
        raise RunError(
            f"{path}: damaged checkpoint ({type(err).__name__}); delete it to restart training"
        ) from None


def select_members(best: Params, new: Params, improved: np.ndarray) -> Params:
    """Per member: ``new`` where ``improved`` else ``best``."""

    def pick(b, n):
        keep = jnp.asarray(improved).reshape((-1,) + (1,) * (n.ndim - 1))
        return jnp.where(keep, n, b)

    return jax.tree_util.tree_map(pick, best, new)
