"""Checks that a model satisfies the contract of :mod:`jaxattn.core.protocol`: its functions and
seams (:func:`check_model`, structural, before anything runs) and its outputs on a probe batch
(:func:`check_model_outputs`, once, before an analysis or a training run trusts them)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxattn.core.errors import JaxattnError
from jaxattn.core.protocol import (
    CAPABILITIES,
    TASKS,
    BaseModel,
    Batch,
    Encoded,
    Params,
    capabilities,
    has_pooling_attention,
    has_self_attention,
)


def check_model(model: Any, needs: tuple[str, ...] = ()) -> BaseModel:
    """``model`` if it satisfies the base (:class:`BaseModel`) and offers the capabilities
    ``needs`` (names of :data:`CAPABILITIES`), else a TypeError naming what is missing.

    A seam offered in part (``attend`` without ``decode``, ``self_attention_seam`` without
    ``self_attention``) is refused too. :func:`capabilities` lists what the model offers.
    """
    name = type(model).__name__
    missing = [
        attr
        for attr in ("init", "embed", "encode_embedded", "probs")
        if not callable(getattr(model, attr, None))
    ]
    pooling = [attr for attr in ("attend", "decode") if callable(getattr(model, attr, None))]
    if not callable(getattr(model, "logits", None)) and len(pooling) < 2:
        missing.append("logits (or the pooling seam's attend and decode)")
    if not isinstance(getattr(model, "task", None), str):
        missing.append("task")
    if missing:
        raise TypeError(f"{name} does not satisfy the model contract: missing {', '.join(missing)}")
    if len(pooling) == 1:
        other = ({"attend", "decode"} - set(pooling)).pop()
        raise TypeError(f"{name} offers {pooling[0]} but not {other}: the pooling seam needs both")
    if getattr(model, "self_attention_seam", False) and not has_self_attention(model):
        raise TypeError(f"{name} declares self_attention_seam but has no self_attention")
    if model.task not in TASKS:
        raise TypeError(f"{name}.task is {model.task!r}; expected one of {TASKS}")
    unknown = sorted(set(needs) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"check_model: unknown capability {', '.join(unknown)}; "
                         f"known: {', '.join(CAPABILITIES)}")
    offered = capabilities(model)
    lacking = [n for n in needs if n not in offered]
    if lacking:
        raise TypeError(f"{name} lacks {', '.join(lacking)} (it offers: "
                        f"{', '.join(offered) or 'the base only'})")
    try:
        hash(model)
    except TypeError as err:
        raise TypeError(
            f"{name} must be hashable (e.g. a frozen dataclass) to be a jit static"
        ) from err
    return model


class ModelOutputError(JaxattnError, ValueError):
    """A model whose outputs on a probe batch break the contract (wrong shapes, attention that is
    not a distribution over the mask, probabilities that are not a distribution); the message
    has one sentence per problem."""


# float32 sums of a few hundred terms are within ~1e-5 of exact; bfloat16 training rounds to
# ~1e-2. A model off by more than this does not normalise at all.
SUM_TOLERANCE = 2e-2


def _shape(x: Any) -> tuple | None:
    return tuple(x.shape) if hasattr(x, "shape") else None


def _shape_problem(name: str, got: Any, want: tuple, what: str) -> str | None:
    """A sentence if ``got``'s shape is not ``want`` (None in ``want`` matches any size)."""
    shape = _shape(got)
    if shape is None:
        return f"{name} returned a {type(got).__name__}, not an array {what}."
    if len(shape) != len(want) or any(w is not None and w != s for w, s in zip(want, shape)):
        shown = "[" + ", ".join("?" if w is None else str(w) for w in want) + "]"
        return f"{name} returned shape {list(shape)}, expected {shown} {what}."
    return None


def check_model_outputs(model: Any, params: Params, batch: Batch,
                        num_classes: int | None = None) -> None:
    """Runs ``model`` once on ``batch`` and refuses outputs that break the contract, with a
    :class:`ModelOutputError` of one sentence per problem.

    Checked: ``embed`` gives <float>[B, T, E]; ``encode_embedded`` an :class:`Encoded` with
    ``hidden`` [B, T, H] and ``mask`` [B, T]; ``attend`` (pooling models) [B, T] that sums to 1
    over ``batch.mask`` on every row with a real token and is 0 off it; ``decode`` / ``logits``
    [B, C]; ``probs`` of those logits [B, K] (K = 2 for a binary model's single logit), finite,
    non-negative and summing to 1; with ``num_classes``, K equals it (the data's classes).
    """
    name = type(model).__name__
    b, t = batch.tokens.shape
    problems: list[str] = []

    def done() -> None:
        if problems:
            raise ModelOutputError(f"{name} on a probe batch of shape [{b}, {t}]: "
                                   + " ".join(problems))

    embedded = model.embed(params, batch.tokens)
    problems.append(_shape_problem(f"{name}.embed", embedded, (b, t, None), "[B, T, E]"))
    problems[:] = [p for p in problems if p]
    done()
    enc = model.encode_embedded(params, batch, embedded)
    if not isinstance(enc, Encoded):
        problems.append(f"{name}.encode_embedded returned a {type(enc).__name__}, not an Encoded.")
        done()
    problems += [p for p in (
        _shape_problem(f"{name}.encode_embedded(...).hidden", enc.hidden, (b, t, None),
                       "[B, T, H]"),
        _shape_problem(f"{name}.encode_embedded(...).mask", enc.mask, (b, t), "[B, T]"),
    ) if p]
    done()
    if has_pooling_attention(model):
        attn = model.attend(params, enc)
        problem = _shape_problem(f"{name}.attend", attn, (b, t), "[B, T]")
        if problem:
            problems.append(problem)
        else:
            a = jnp.asarray(attn, jnp.float32)
            mask = jnp.asarray(batch.mask, bool)
            rows = mask.any(axis=1)
            sums = jnp.where(mask, a, 0.0).sum(axis=1)
            off = jnp.abs(jnp.where(mask, 0.0, a)).max(axis=1)
            if not bool(jnp.isfinite(a).all()):
                problems.append(f"{name}.attend returned non-finite values.")
            elif bool((rows & (jnp.abs(sums - 1.0) > SUM_TOLERANCE)).any()):
                row = int(jnp.argmax(rows & (jnp.abs(sums - 1.0) > SUM_TOLERANCE)))
                problems.append(f"{name}.attend does not sum to 1 over batch.mask (row {row} "
                                f"sums to {float(sums[row]):.4g}).")
            if bool((off > SUM_TOLERANCE).any()):
                row = int(jnp.argmax(off))
                problems.append(f"{name}.attend is not 0 off batch.mask (row {row} puts "
                                f"{float(off[row]):.4g} on a masked position).")
            if bool((a < -SUM_TOLERANCE).any()):
                problems.append(f"{name}.attend has negative weights.")
        done()
        logits = model.decode(params, enc, attn)
        where = f"{name}.decode"
    else:
        logits = model.logits(params, enc)
        where = f"{name}.logits"
    problem = _shape_problem(where, logits, (b, None), "[B, C]")
    if problem:
        problems.append(problem)
        done()
    probs = model.probs(logits)
    want = 2 if logits.shape[-1] == 1 else logits.shape[-1]
    problem = _shape_problem(f"{name}.probs", probs, (b, want), "[B, K] for the logits")
    if problem:
        problems.append(problem)
        done()
    if num_classes is not None and probs.shape[-1] != num_classes:
        problems.append(f"{name}.probs gives {probs.shape[-1]} classes, the data has "
                        f"{num_classes}.")
        done()
    p = jnp.asarray(probs, jnp.float32)
    if not bool(jnp.isfinite(p).all()):
        problems.append(f"{name}.probs returned non-finite values.")
    else:
        if bool((p < -SUM_TOLERANCE).any()):
            problems.append(f"{name}.probs has negative probabilities.")
        total = p.sum(axis=1)
        if bool((jnp.abs(total - 1.0) > SUM_TOLERANCE).any()):
            row = int(jnp.argmax(jnp.abs(total - 1.0)))
            problems.append(f"{name}.probs is not a distribution (row {row} sums to "
                            f"{float(total[row]):.4g}).")
    done()
