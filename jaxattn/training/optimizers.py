"""The optimizers a config names (``train.optimizer``), their learning-rate schedule, and
what acts on a pretrained encoder's parameter groups: weight decay masked off the pooling
scorer, layer-wise learning-rate decay and frozen embeddings.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxattn.core.errors import ConfigError
from jaxattn.core.protocol import Params
from jaxattn.data.batching import num_batches
from jaxattn.models.network import SCORER
from jaxattn.training.config import OPTIMIZERS, TrainConfig


def decay_mask(params: Params) -> Any:
    """``params``' tree of bools: True where the default optimizers apply weight decay.

    Everything decays except the pooling attention scorer, selected by module identity: the
    subtree under the root key :data:`~jaxattn.models.network.SCORER` (the scorer module's name
    in :class:`~jaxattn.models.network.AttentionNetwork`). A Transformer encoder's self-attention
    layers (``text_encoder/layer_i/attention``) are weights of the encoder and decay.
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not (path and getattr(path[0], "key", None) == SCORER), params
    )


def learning_rate_schedule(cfg: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """AdamW's learning rate at each step: linear from 0 to ``cfg.learning_rate`` over the
    first ``warmup_fraction`` of the ``epochs x steps_per_epoch`` steps, then linear to 0 at
    the last step."""
    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = min(round(cfg.warmup_fraction * total), total)
    decay = optax.linear_schedule(cfg.learning_rate, 0.0, max(total - warmup, 1))
    if warmup == 0:
        return decay
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.learning_rate, warmup), decay], [warmup]
    )


def parameter_groups(model: Any, params: Params) -> Any:
    """``params``' tree of group names (``embeddings``, ``layers``, ``head``) of a model that
    offers ``parameter_group(path)`` (the pretrained encoders); ``layers`` leaves are stacked
    ``[L, ...]``, layer ``l`` on axis 0."""
    def group(path, _):
        return model.parameter_group(tuple(str(getattr(k, "key", k)) for k in path))

    return jax.tree_util.tree_map_with_path(group, params)


def layerwise_scale(groups: Any, decay: float, num_layers: int) -> optax.GradientTransformation:
    """Scales the updates of layer ``l`` (of ``num_layers``) by ``decay ** (num_layers - l)``,
    the embeddings' by ``decay ** (num_layers + 1)``, the head's by 1: layer-wise learning-rate
    decay when chained after the optimizer (whose update is the learning rate times the step,
    decoupled weight decay included)."""
    layer_factors = decay ** (num_layers - np.arange(num_layers, dtype=np.float64))

    def scale(updates, params=None):
        def one(group, u):
            if group == "layers":
                factors = jnp.asarray(layer_factors, u.dtype)
                return u * factors.reshape((-1,) + (1,) * (u.ndim - 1))
            if group == "embeddings":
                return u * jnp.asarray(decay ** (num_layers + 1), u.dtype)
            return u

        return jax.tree_util.tree_map(one, groups, updates)

    return optax.stateless(scale)


def make_optimizer(
    cfg: TrainConfig, train_size: int | None = None, model: Any = None,
    params: Params | None = None,
) -> optax.GradientTransformation:
    """The optimizer ``cfg.optimizer`` names, weight decay masked by :func:`decay_mask`.

    ``amsgrad`` (the protocol's): PyTorch-style Adam(amsgrad) with L2 weight decay (added to the
    gradient) at a constant learning rate. ``adamw``: decoupled weight decay and
    :func:`learning_rate_schedule`, which needs ``train_size`` (the training split's size; the
    schedule counts its batches of ``cfg.batch_size``).

    ``cfg.layer_decay`` < 1 and ``cfg.freeze_embeddings`` act on a model with
    ``parameter_group`` (the pretrained encoders; ``model`` and one member's ``params`` needed):
    :func:`layerwise_scale` after the optimizer, and ``optax.multi_transform`` giving the
    embeddings ``optax.set_to_zero`` (no update, no optimizer state).
    """
    base = _base_optimizer(cfg, train_size)
    if cfg.layer_decay == 1.0 and not cfg.freeze_embeddings:
        return base
    if model is None or params is None or not callable(getattr(model, "parameter_group", None)):
        raise ConfigError("train.layer_decay / train.freeze_embeddings need a model with layers "
                          "(a pretrained encoder)", key="train.layer_decay")
    groups = parameter_groups(model, params)
    if cfg.layer_decay != 1.0:
        base = optax.chain(base, layerwise_scale(groups, cfg.layer_decay, model.num_layers))
    if not cfg.freeze_embeddings:
        return base
    labels = jax.tree_util.tree_map(lambda g: "frozen" if g == "embeddings" else "trained", groups)
    return optax.multi_transform({"trained": base, "frozen": optax.set_to_zero()}, labels)


def _base_optimizer(cfg: TrainConfig, train_size: int | None) -> optax.GradientTransformation:
    """:func:`make_optimizer` before layer-wise rates and frozen parameters."""
    if cfg.optimizer == "amsgrad":
        return optax.chain(
            optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask),
            optax.amsgrad(cfg.learning_rate),
        )
    if cfg.optimizer == "adamw":
        if train_size is None:
            raise ValueError("train.optimizer = 'adamw' needs the training split's size")
        steps_per_epoch = max(num_batches(train_size, cfg.batch_size), 1)
        return optax.adamw(learning_rate_schedule(cfg, steps_per_epoch),
                           weight_decay=cfg.weight_decay, mask=decay_mask)
    raise ConfigError(
        f"train.optimizer: {cfg.optimizer!r} is not one of {', '.join(OPTIMIZERS)}",
        key="train.optimizer",
    )
