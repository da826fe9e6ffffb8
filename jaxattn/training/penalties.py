"""Training-time penalties added to the task loss: conicity (Diversity LSTM) and deception.

* Conicity (Mohankumar et al. 2020): the mean over real tokens of ``|cos(h_t, mean_j h_j)|``,
  means over real tokens only. Near 1, the hidden states lie in a narrow cone, so any attention
  gives about the same context vector; the Diversity LSTM adds ``lambda * conicity`` to the loss.
* Deception (Pruthi et al. 2020): ``-lambda * log(1 - sum_{i in I} a_i)`` per example, ``I`` the
  impermissible tokens; zero for an example without any.

A :data:`Penalty` maps ``(batch, enc, attn)`` to a per-example value <float32>[B]; the trainer
adds ``lambda``-weighted penalties reduced like the task loss (:func:`penalty_objective`: summed
over the batch for binary tasks, where the task loss is a sum, else averaged), so ``lambda``
weighs each example's penalty against its own loss, as in the reference code's one-example steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.errors import ConfigError
from jaxattn.core.protocol import AttentionModel, Batch, Encoded, Params, final_hidden, is_binary

Penalty = Callable[[Batch, Encoded, jnp.ndarray], jnp.ndarray]

# cos = dot / max(|h| |m|, eps), as torch.nn.functional.cosine_similarity (the reference code's).
COS_EPS = 1e-8
# The smallest permissible attention mass the deception penalty takes the log of: an example whose
# tokens are all impermissible costs -log(1e-30) ~ 69 and no gradient, never inf.
MIN_MASS = 1e-30


def _safe_norm(x: jnp.ndarray) -> jnp.ndarray:
    """Euclidean norm over the last axis with a finite gradient at 0 (padding rows are zero)."""
    sq = jnp.sum(x * x, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def conicity(hidden: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B] each row's conicity of ``hidden`` <float>[B, T, H] over ``mask`` <bool>[B, T].

    A row without real tokens gives 0.
    """
    m = mask.astype(hidden.dtype)
    n = jnp.maximum(m.sum(axis=1), 1.0)
    mean = jnp.einsum("bt,bth->bh", m, hidden) / n[:, None]
    dots = jnp.einsum("bth,bh->bt", hidden, mean)
    cos = dots / jnp.maximum(_safe_norm(hidden) * _safe_norm(mean)[:, None], COS_EPS)
    return jnp.sum(jnp.abs(cos) * m, axis=1) / n


def impermissible_mass(attn: jnp.ndarray, impermissible: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B] attention <float>[B, T] on the impermissible tokens <bool>[B, T]."""
    return jnp.sum(jnp.where(impermissible, attn, 0.0), axis=1)


def deception_penalty(
    attn: jnp.ndarray, impermissible: jnp.ndarray, mask: jnp.ndarray
) -> jnp.ndarray:
    """<float32>[B] ``-log(1 - sum_{i in I} a_i)``, 0 for rows without impermissible tokens.

    ``1 - sum_I a`` is computed as the mass on the permissible real tokens (``mask`` and not
    impermissible), which has no cancellation when nearly all attention is on ``I``.
    """
    imp = impermissible & mask
    permissible = jnp.sum(jnp.where(mask & ~imp, attn, 0.0), axis=1)
    has_imp = jnp.any(imp, axis=1)
    return jnp.where(has_imp, -jnp.log(jnp.maximum(permissible, MIN_MASS)), 0.0)


def penalty_objective(model: AttentionModel, per_example: jnp.ndarray, batch: Batch) -> jnp.ndarray:
    """A per-example penalty <float32>[B] reduced like the task loss (padding rows weigh 0)."""
    total = jnp.sum(per_example * batch.weights)
    if is_binary(model):
        return total
    return total / jnp.maximum(batch.weights.sum(), 1.0)


def conicity_penalty(weight: float) -> Penalty:
    """``weight * conicity`` of the encoder's hidden states over the real tokens."""

    def penalty(batch: Batch, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        return weight * conicity(enc.hidden, enc.mask)

    return penalty


def impermissible_tokens(batch: Batch, word_ids: jnp.ndarray | None) -> jnp.ndarray:
    """<bool>[B, T] the impermissible real tokens: those with an id in ``word_ids``, or the
    batch's rationale when ``word_ids`` is None (all False without one)."""
    if word_ids is not None:
        return jnp.isin(batch.tokens, word_ids) & batch.mask
    if batch.rationale is None:
        return jnp.zeros_like(batch.mask)
    return batch.rationale & batch.mask


def deception(weight: float, word_ids: Sequence[int] | None = None) -> Penalty:
    """``weight * deception_penalty`` with the impermissible tokens of :func:`impermissible_tokens`."""
    ids = None if word_ids is None else jnp.asarray(np.asarray(word_ids, np.int32))

    def penalty(batch: Batch, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        return weight * deception_penalty(attn, impermissible_tokens(batch, ids), enc.mask)

    return penalty


def combine(penalties: Sequence[Penalty]) -> Penalty | None:
    """The sum of ``penalties`` (None when there are none)."""
    if not penalties:
        return None

    def penalty(batch: Batch, enc: Encoded, attn: jnp.ndarray) -> jnp.ndarray:
        return sum(p(batch, enc, attn) for p in penalties)

    return penalty


def penalty_for(cfg, prepared) -> Penalty | None:
    """The penalties a run config asks for: conicity for ``model.encoder = "diversity_lstm"``,
    deception for ``train.deception_weight > 0`` (``train.impermissible_words`` looked up in the
    vocabulary of ``prepared``; an empty list means the data's rationale). A word missing from the
    vocabulary, or no words for data without a rationale, is a ConfigError."""

    chosen = []
    if cfg.model.encoder == "diversity_lstm" and cfg.model.diversity_weight > 0:
        chosen.append(conicity_penalty(cfg.model.diversity_weight))
    if cfg.train.deception_weight > 0:
        words, stoi = cfg.train.impermissible_words, prepared.vocab.stoi
        missing = [w for w in words if w not in stoi]
        if missing:
            raise ConfigError(f"train.impermissible_words: {missing[0]!r} is not in the "
                              "vocabulary of the training split", "train.impermissible_words")
        if not words and prepared.splits["train"].rationales is None:
            raise ConfigError(f"train.deception_weight: data set {prepared.dataset.name!r} has no "
                              "rationale to take as impermissible; set train.impermissible_words",
                              "train.deception_weight")
        chosen.append(deception(cfg.train.deception_weight,
                                [stoi[w] for w in words] if words else None))
    return combine(chosen)


@functools.partial(jax.jit, static_argnames=("model",))
def _row_conicity(model: AttentionModel, params: Params, batch) -> jnp.ndarray:
    """<float32>[B] the conicity of each row's last hidden states; one program per model and
    batch shape, reused by every call of :func:`split_conicity`."""
    return conicity(final_hidden(model, params, batch), batch.mask)


def split_conicity(model: AttentionModel, params: Params, batches) -> float:
    """The mean conicity of the last hidden states (every position, :func:`final_hidden`) over
    every real row of ``batches``."""
    total = count = 0.0
    for batch in batches:
        values = np.asarray(_row_conicity(model, params, batch), np.float64)
        real = np.asarray(batch.weights) > 0
        total += values[real].sum()
        count += real.sum()
    return float(total / max(count, 1.0))
