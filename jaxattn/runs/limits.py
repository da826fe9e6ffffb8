"""What a config must fit before anything is trained or written: the Transformer's learned
positions (:func:`check_positions`) and the memory there is (:func:`check_memory`, from an
estimate of the parameters' and one batch's bytes). Each refusal names the config key to change.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxattn.config import Config, ConfigError
from jaxattn.data.batching import bucket_length
from jaxattn.data.prepare import Prepared
from jaxattn.training.trainer import first_batch


def check_positions(cfg: Config, prepared: Prepared) -> None:
    """Refuses, before anything is trained or written, data whose padded batches would be wider
    than the Transformer's learned positions (``model.max_positions``)."""
    if cfg.model.encoder != "transformer":
        return
    limit = cfg.model.max_positions
    for name, split in prepared.splits.items():
        for what, rows in (("text", split.tokens), ("query", split.queries or [])):
            if not rows:
                continue
            longest = max(len(r) for r in rows)
            width = bucket_length(longest, cfg.train.buckets)
            if width > limit:
                raise ConfigError(
                    f"model.max_positions: the longest {what} of the {name} split has "
                    f"{longest - 2} tokens, padded by train.buckets to {width} positions, more "
                    f"than the Transformer's {limit} learned positions; set "
                    f"model.max_positions = {width} or a data.max_length that fits",
                    key="model.max_positions",
                )


# Training holds the parameters, their gradients and two optimizer moments: 4 copies.
COPIES_WHILE_TRAINING = 4
# Per token of a batch, the activations kept for the backward pass: a few vectors of the model's
# widths (embedding, hidden states both ways, attention, their gradients).
ACTIVATION_VECTORS = 8


def available_memory() -> tuple[int, str] | None:
    """(bytes, where) of the memory training can use: the first JAX device's limit when it
    reports one (a GPU), else the machine's physical memory; None when neither is known."""
    try:
        device = jax.devices()[0]
        stats = device.memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"]), f"{device.device_kind} memory"
    except Exception:  # a backend without memory_stats
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory"
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def memory_estimate(cfg: Config, model, prepared: Prepared) -> tuple[int, int]:
    """(bytes of parameters while training, bytes of one training batch's activations), float32;
    the parameter shapes come from ``jax.eval_shape``, so nothing is allocated."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), first_batch(prepared.splits["train"]))
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes))
    longest = max(len(r) for r in prepared.splits["train"].tokens)
    width = bucket_length(longest, cfg.train.buckets)
    m = cfg.model
    per_token = m.embed_dim + 2 * m.hidden_size + m.cnn_filters * 4 + m.width + m.ff_size
    batch = cfg.train.batch_size * width * ACTIVATION_VECTORS * per_token * 4
    return COPIES_WHILE_TRAINING * 4 * n_params, batch


def check_memory(cfg: Config, model, prepared: Prepared) -> None:
    """Refuses sizes whose parameters or one batch's activations cannot fit in the memory there
    is (naming the key and the estimate), before anything is allocated."""
    found = available_memory()
    if found is None:
        return
    available, where = found
    params, batch = memory_estimate(cfg, model, prepared)
    if params > available:
        keys = "model.hidden_size / model.embed_dim / the vocabulary (data.min_df)"
        raise ConfigError(
            f"{keys}: the parameters need about {gib(params)} while training (parameters, "
            f"gradients, optimizer moments), more than the {gib(available)} of {where}",
            key="model.hidden_size",
        )
    if batch > available:
        raise ConfigError(
            f"train.batch_size = {cfg.train.batch_size}: one batch's activations need about "
            f"{gib(batch)}, more than the {gib(available)} of {where}; lower train.batch_size",
            key="train.batch_size",
        )
