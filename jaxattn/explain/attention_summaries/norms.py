"""Norm-based attention (Kobayashi et al. 2020, 2021): ``||a_ij f(x_j)||``, and with the
residual connection and the LayerNorm after it."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.protocol import (
    Batch,
    Params,
)
from jaxattn.models.pretrained.ops import layer_norm
from jaxattn.models.transformer import LAYER_NORM_EPS as TRANSFORMER_LN_EPS
from jaxattn.models.transformer import TransformerBlock


@struct.dataclass
class NormInputs:
    """What the norm-based summaries need besides the maps, layer by layer.

    Attributes:
      transformed: <float32>[L, B, H, T, W] ``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h``: each key's
        value vector of head ``h`` passed through that head's slice of the output projection.
      residual: <float32>[L, B, T, W] what the residual connection adds at each query (the
        attention block's input stream).
      out_bias: <float32>[L, W] the output projection's bias ``b_O``.
      ln_scale: <float32>[L, W] the LayerNorm applied to ``residual + attention`` (post-LN
        models), or None when none is (pre-LN: the stream goes on un-normalised).
      ln_eps: that LayerNorm's epsilon.
    """

    transformed: jnp.ndarray
    residual: jnp.ndarray
    out_bias: jnp.ndarray
    ln_scale: jnp.ndarray | None = None
    ln_eps: float = struct.field(pytree_node=False, default=1e-12)


@struct.dataclass
class NormSummaries:
    """Attributes (each <float32>[L, B, T], read at the query ``rows``; [B, T] is ``[-1]``):
    attention: ``||sum_h a^h_ij f_h(x_j)||`` (Kobayashi et al. 2020).
    residual: ``||sum_h a^h_ij f_h(x_j) + [i = j] x_i||`` (the residual connection added).
    residual_ln: ``||g(sum_h a^h_ij f_h(x_j) + [i = j] x_i)||`` with ``g(z) = gamma * (z -
      mean z) / s_i`` the following LayerNorm's share of each term (Kobayashi et al. 2021),
      ``s_i`` the standard deviation of the whole sum at query ``i``; None for pre-LN models.
    """

    attention: jnp.ndarray
    residual: jnp.ndarray
    residual_ln: jnp.ndarray | None


def norm_based(
    maps: jnp.ndarray, inputs: NormInputs, valid: jnp.ndarray, rows: jnp.ndarray,
    chunk: int | None = None,
) -> NormSummaries:
    """Norm-based attention of every layer (see :class:`NormSummaries`).

    Each (query, key) pair's contribution is a ``W``-vector, ``[B, T, T, W]`` per layer: the
    layers are computed one after another and the queries ``chunk`` at a time (None: all),
    each block's norms added into the reading at once, so memory stays at ``[B, chunk, T, W]``.
    The queries may be the first ``Q <= T`` only (``maps`` <float32>[L, B, H, Q, T],
    ``inputs.residual`` [L, B, Q, W], ``rows`` [B, Q]) when the reading weighs no other: the
    [CLS] row is one query, not ``T``.
    """
    t, queries_in = maps.shape[-1], maps.shape[-2]
    chunk = min(chunk or queries_in, queries_in)
    blocks = -(-queries_in // chunk)
    padded = blocks * chunk  # queries padded to whole blocks; a padded query has weight 0
    weights = jnp.pad(rows, ((0, 0), (0, padded - queries_in)))
    with_ln = inputs.ln_scale is not None
    ln_scale = inputs.ln_scale if with_ln else jnp.zeros_like(inputs.out_bias)

    def one_layer(layer):
        layer_maps, transformed, residual, out_bias, scale = layer
        layer_maps = jnp.pad(layer_maps, ((0, 0), (0, 0), (0, padded - queries_in), (0, 0)))
        residual = jnp.pad(residual, ((0, 0), (0, padded - queries_in), (0, 0)))

        def block(read, start):
            queries = jax.lax.dynamic_slice_in_dim(layer_maps, start, chunk, axis=2)
            # [B, q, j, W]: key j's contribution to query q, summed over heads.
            parts = jnp.einsum("bhqj,bhjw->bqjw", queries, transformed)
            own = (start + jnp.arange(chunk))[:, None] == jnp.arange(t)[None, :]  # [q, j]: q = j
            stream = jax.lax.dynamic_slice_in_dim(residual, start, chunk, axis=1)  # [B, q, W]
            with_residual = parts + own[None, :, :, None] * stream[:, :, None, :]
            norms = [jnp.linalg.norm(parts, axis=-1), jnp.linalg.norm(with_residual, axis=-1)]
            if with_ln:
                total = with_residual.sum(axis=2) + out_bias[None, None]  # [B, q, W]
                std = jnp.sqrt(total.var(axis=-1) + inputs.ln_eps)  # [B, q]
                centred = with_residual - with_residual.mean(axis=-1, keepdims=True)
                scaled = centred * scale[None, None, None] / std[..., None, None]
                norms.append(jnp.linalg.norm(scaled, axis=-1))
            w = jax.lax.dynamic_slice_in_dim(weights, start, chunk, axis=1)  # [B, q]
            return tuple(r + jnp.einsum("bq,bqj->bj", w, n) for r, n in zip(read, norms)), None

        zeros = tuple(jnp.zeros(valid.shape, maps.dtype) for _ in range(3 if with_ln else 2))
        read, _ = jax.lax.scan(block, zeros, jnp.arange(blocks) * chunk)
        return tuple(jnp.where(valid, r, 0.0) for r in read)

    read = jax.lax.map(one_layer, (maps, inputs.transformed, inputs.residual, inputs.out_bias,
                                   ln_scale))
    return NormSummaries(
        attention=read[0], residual=read[1], residual_ln=read[2] if with_ln else None
    )


def transformer_norm_inputs(model, params: Params, batch: Batch) -> NormInputs:
    """:class:`NormInputs` of jaxattn's Transformer passage encoder (``model.network``; pre-LN,
    so ``ln_scale`` is None). Each block's values are read from ``LN1(x)``, its residual is the
    block's input stream ``x``; the stream is recomputed block by block (dropout off)."""
    encoder = params["text_encoder"]
    settings = model.network.settings
    valid = jnp.asarray(batch.valid, bool)
    features = model.featurize(params, model.embed(params, batch.tokens))
    x = features + encoder["positions"][None, : features.shape[1]]
    block = TransformerBlock(settings.width, settings.heads, settings.ff_size)
    norm = nn.LayerNorm(epsilon=TRANSFORMER_LN_EPS)
    transformed, residual, out_bias = [], [], []
    names = sorted((k for k in encoder if k.startswith("blocks_")), key=lambda k: int(k[7:]))
    for name in names:
        p = encoder[name]
        attn = p["attention"]
        normed = norm.apply({"params": p["norm1"]}, x)
        residual.append(x)
        transformed.append(_head_outputs(normed, attn["value"], attn["out"]["kernel"],
                                         settings.heads))
        out_bias.append(attn["out"]["bias"])
        x, _ = block.apply({"params": p}, x, valid)
    return NormInputs(
        transformed=jnp.stack(transformed),
        residual=jnp.stack(residual),
        out_bias=jnp.stack(out_bias),
        ln_scale=None,
    )


def _head_outputs(normed, value, out_kernel, heads):
    """<float32>[B, H, T, W] ``(x W_V + b_V)_h W_O[h]`` per head."""
    b, t, w = normed.shape
    size = w // heads
    v = (normed @ value["kernel"] + value["bias"][None, None]).reshape(b, t, heads, size)
    per_head = out_kernel.reshape(heads, size, w)
    return jnp.einsum("bthd,hdw->bhtw", v, per_head)


def bert_norm_inputs(classifier, params: Params, batch: Batch) -> NormInputs:
    """:class:`NormInputs` of a BERT classifier's encoder (``classifier.bert``; params under
    ``"bert"``). Post-LN: ``ln_scale`` is each layer's ``attn_ln``; pre-LN: None, and the values
    are read from ``attn_ln`` of the stream."""
    bert = classifier.bert
    c = bert.config
    p = params["bert"]
    types = jnp.zeros(batch.tokens.shape, jnp.int32)
    out = bert.encode(p, batch.tokens, types, batch.valid)
    streams = out.hidden_states[:-1]  # [L, B, T, E] each layer's input
    layers = p["layers"]

    def per_layer(h, lp):
        a_in = layer_norm(h, lp["attn_ln"], c.layer_norm_eps) if c.pre_ln else h
        return _head_outputs(a_in, lp["value"], lp["attn_out"]["kernel"], c.num_heads)

    transformed = jax.vmap(per_layer)(streams, layers)
    return NormInputs(
        transformed=transformed,
        residual=streams,
        out_bias=layers["attn_out"]["bias"],
        ln_scale=None if c.pre_ln else layers["attn_ln"]["scale"],
        ln_eps=c.layer_norm_eps,
    )
