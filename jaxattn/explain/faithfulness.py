"""ERASER faithfulness (DeYoung et al. 2020): comprehensiveness, sufficiency and their AOPC.

For each importance ranking and each bin ``k`` in :data:`BINS`, the rationale ``r`` is the
``max(1, floor(k n))`` highest-scoring of the ``n`` real tokens (ties: earlier first; ferret's
``int(k n)``, with at least one token so that the 1% bin of a short sentence is not empty). With
``y`` the class predicted on the full input and ``p`` its probability:

* comprehensiveness ``p(y|x) - p(y|x without r)``: high when the rationale was needed;
* sufficiency ``p(y|x) - p(y|r)``: low when the rationale alone keeps the decision;
* AOPC: the mean of either over the bins.

With ``unit="word"`` (word pieces) the units are words (``Batch.word_index``): the rationale is
the ``max(1, floor(k n_words))`` highest-scoring words, a word scoring the sum of its pieces'
scores (ties: the earlier word first), and every piece of a chosen word is deleted. On data whose
words are single tokens both units give the same numbers.

Tokens are *deleted*: the kept tokens (with the boundary markers) move left in their original
order and the sequence gets shorter, as if the text had been written without them
(:func:`jaxattn.data.batching.keep_tokens`). Every method x bin x (without r, only r) input of
a batch is one forward pass of the batch's rows, mapped one after another to bound memory, at
the narrowest of a few widths (:func:`narrow_widths`) that holds every row's kept tokens: the
rationale alone at 1% of a 512-piece review runs at 32 positions, not 512. Only padding is cut,
so the outputs are those of the full width. Per-token inputs (the embeddings, or the
``featurize`` features: the BiLSTM's input projections) are computed once and their rows
gathered, which is what encoding the shorter text computes (as leave-one-out does).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.protocol import AttentionModel, Batch, Params, model_logits
from jaxattn.data.batching import keep_tokens, kept_first
from jaxattn.explain.deletion import first_of_unit, per_token_inputs, same_unit, word_units
from jaxattn.explain.erasure import descending_ranks
from jaxattn.explain.interventions import instance_keys

BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
# What a rationale is made of: word pieces (tokens) or whole words. "auto": words when some word
# of the data has several pieces, else tokens (the two agree when every word is one token).
UNITS = ("auto", "word", "piece")


def has_multi_piece_words(word_index) -> bool:
    """Whether some word of ``word_index`` <int>[N, T] (-1: no word) spans several positions
    (on the host: a property of the data, not of a traced batch)."""
    if word_index is None:
        return False
    index = np.asarray(word_index)
    for row in index:
        words = row[row >= 0]
        if len(np.unique(words)) < len(words):
            return True
    return False


def resolve_unit(unit: str, word_index) -> str:
    """``"word"`` or ``"piece"``: the unit ``unit`` (one of :data:`UNITS`) means for data with
    ``word_index`` <int>[N, T] (None: a word vocabulary)."""
    if unit not in UNITS:
        raise ValueError(f"ERASER unit {unit!r} is not one of {', '.join(UNITS)}")
    if unit == "auto":
        return "word" if has_multi_piece_words(word_index) else "piece"
    return unit


def rationale_sizes(mask: jnp.ndarray, bins=BINS) -> jnp.ndarray:
    """<int32>[K, B] tokens in each bin's rationale: ``max(1, floor(k n))``, 0 without tokens."""
    n = mask.sum(axis=-1)
    k = jnp.floor(jnp.asarray(bins)[:, None] * n[None]).astype(jnp.int32)
    return jnp.where(n[None] > 0, jnp.maximum(k, 1), 0)


def rationales(scores: jnp.ndarray, mask: jnp.ndarray, units: jnp.ndarray | None,
               bins=BINS) -> jnp.ndarray:
    """<bool>[K, B, T] each bin's rationale: the top ``max(1, floor(k n))`` of the ``n`` units.

    Args:
      scores: <float32>[B, T] per-token scores.
      mask: <bool>[B, T] real tokens.
      units: <int32>[B, T] the unit (word) of each real token, -1 elsewhere; None: every real
        token its own unit. A unit scores the sum of its tokens' scores, ranks by its first
        token's position on ties, and is in the rationale with all of its tokens.
    """
    if units is None:
        return mask[None] & (descending_ranks(scores, mask)[None]
                             < rationale_sizes(mask, bins)[..., None])
    same = same_unit(units)  # [B, T, T]
    first = first_of_unit(units)
    unit_scores = jnp.einsum("bpq,bq->bp", same.astype(scores.dtype), jnp.where(mask, scores, 0))
    chosen = first[None] & (descending_ranks(unit_scores, first)[None]
                            < rationale_sizes(first, bins)[..., None])  # [K, B, T] first tokens
    return mask[None] & jnp.einsum("bpq,kbq->kbp", same.astype(jnp.int32),
                                   chosen.astype(jnp.int32)).astype(bool)


def narrow_widths(steps: int, multiple: int = 8) -> tuple[int, ...]:
    """The widths a shortened input of ``steps`` positions may run at: 1/16, 1/8, 1/4, 1/2, 3/4
    and all of ``steps``, rounded up to ``multiple`` (each width is one more forward pass in the
    compiled program, so a few, not one per length)."""
    up = lambda n: min(steps, -(-n // multiple) * multiple)  # noqa: E731
    return tuple(sorted({up(max(1, -(-steps * j // 16))) for j in (1, 2, 4, 8, 12, 16)}))


def random_scores(key: jax.Array, index: jnp.ndarray, steps: int) -> jnp.ndarray:
    """<float32>[B, T] a random ranking per instance (the floor every method should beat)."""
    return jax.vmap(lambda k: jax.random.uniform(k, (steps,)))(instance_keys(key, index))


@functools.partial(jax.jit, static_argnames=("model", "bins", "unit"))
def comprehensiveness_sufficiency(
    model: AttentionModel,
    params: Params,
    batch: Batch,
    scores: jnp.ndarray,
    bins: tuple[float, ...] = BINS,
    unit: str = "piece",
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Comprehensiveness and sufficiency of every ranking at every bin.

    Args:
      scores: <float32>[M, B, T] M rankings of the tokens (high = important).
      unit: ``"piece"`` (rationales of tokens) or ``"word"`` (of whole words, by
        ``batch.word_index``; each word scores the sum of its pieces' scores).
    Returns:
      (comprehensiveness <float32>[M, B, K], sufficiency <float32>[M, B, K], p(y|x) <float32>[B]);
      0 for rows without real tokens.
    """
    if unit not in ("piece", "word"):
        raise ValueError(f"ERASER unit {unit!r} is not 'piece' or 'word'")
    query = batch.replace(rationale=None)
    inputs, encoder, _ = per_token_inputs(model, params, query)
    units = word_units(batch) if unit == "word" else None

    def output(b: Batch, x: jnp.ndarray) -> jnp.ndarray:
        # The model's own output (a pooling model's decode(attend), a [CLS] head's logits):
        # only tokens are deleted, no attention is read or replaced.
        return model.probs(model_logits(model, params, encoder(b, x)))

    full = output(query, inputs)
    target = jnp.argmax(full, axis=-1)[:, None]
    p_full = jnp.take_along_axis(full, target, axis=-1)[:, 0]
    boundary = batch.valid & ~batch.mask

    widths = narrow_widths(batch.tokens.shape[1])

    def at_width(width, keep):
        rows = jax.vmap(lambda x, order: x[order])(inputs, kept_first(keep)[:, :width])
        probs = output(keep_tokens(query, keep, width), rows)
        return jnp.take_along_axis(probs, target, axis=-1)[:, 0]

    def probability(keep):  # [B, T] -> [B] at the narrowest width holding every row's tokens
        narrowest = jnp.searchsorted(jnp.asarray(widths), keep.sum(axis=-1).max())
        return jax.lax.switch(narrowest, [functools.partial(at_width, w) for w in widths], keep)

    def without_and_alone(s):
        rationale = rationales(s, batch.mask, units, bins)  # [K, B, T]
        # [2K, B, T]: without the rationale, then the rationale alone (with the boundary markers)
        return jnp.concatenate([batch.valid[None] & ~rationale, boundary[None] | rationale])

    m, k = scores.shape[0], len(bins)
    keeps = jax.vmap(without_and_alone)(scores).reshape(m * 2 * k, *batch.tokens.shape)
    drop = p_full[None, None] - jax.lax.map(probability, keeps).reshape(m, 2 * k, -1)  # [M, 2K, B]
    drop = jnp.where(batch.mask.any(axis=-1)[None, None], drop, 0.0).transpose(0, 2, 1)
    return drop[..., :k], drop[..., k:], p_full
