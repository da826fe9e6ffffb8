"""A BERT encoder as pure functions of a params pytree, computing what Hugging Face's
``BertModel`` computes, with the self-attention seam of :class:`jaxattn.core.protocol.HeadMaps`.

The forward pass is split the way the analyses need it:

* :meth:`Bert.embed` gives the word-piece embeddings alone, one row per token (no position,
  token-type or LayerNorm), so gradients w.r.t. the inputs are one ``jax.grad`` over
  :meth:`Bert.encode_embedded`;
* :meth:`Bert.encode_embedded` adds position and token-type embeddings, applies the embedding
  LayerNorm and runs the layers (a ``lax.scan`` over stacked layer params). Padded keys get HF's
  additive ``finfo.min`` before the softmax. With ``heads`` the selected (layer, head) pairs use
  the given probabilities instead of their own; every other head computes its own on the stream
  the replaced heads changed;
* :meth:`Bert.pool` is HF's pooler, ``tanh(dense(h[CLS]))``.

The layers' building blocks (LayerNorm, GELU, dropout, ...) are
:mod:`jaxattn.models.pretrained.ops`.

The two classification heads that read the last hidden states are
:mod:`jaxattn.models.pretrained.heads`.

The params pytree (plain dicts of arrays, layers stacked on a leading axis ``L``)::

    embeddings: word [V, E], position [P, E], token_type [Y, E], ln {scale, bias} [E]
    layers:     query, key, value, attn_out {kernel [L, E, E], bias [L, E]},
                attn_ln {scale, bias} [L, E], intermediate {kernel [L, E, I], bias [L, I]},
                output {kernel [L, I, E], bias [L, E]}, out_ln {scale, bias} [L, E]
    final_ln:   {scale, bias} [E]                     (``pre_ln`` models only)
    pooler:     {kernel [E, E], bias [E]}             (optional)
    classifier: {kernel [E, C], bias [C]}             (optional)

Kernels are ``(in, out)``: ``x @ kernel + bias``. Reading and writing HF folders is
:mod:`jaxattn.models.pretrained.hf_files`. Dropout (HF's places and rates) applies only when
a ``dropout_key`` is given (training); without one every function is the deterministic
(evaluation-mode) network.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxattn.core.protocol import HeadMaps
from jaxattn.models.pretrained import ops

Params = Any

_QKV = ("query", "key", "value")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT encoder (the fields of HF's ``BertConfig`` it depends on).

    ``pre_ln`` puts each LayerNorm before its sublayer (``h + f(LN(h))``) and adds a final
    LayerNorm after the last layer; HF's ``BertModel`` is post-LN (``LN(h + f(h))``).
    """

    vocab_size: int
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: int = 0
    pre_ln: bool = False
    hidden_dropout: float = 0.1  # HF's hidden_dropout_prob; only with a dropout key
    attention_dropout: float = 0.1  # HF's attention_probs_dropout_prob; likewise

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


@struct.dataclass
class BertOutput:
    """What :meth:`Bert.encode_embedded` returns.

    Attributes:
      hidden: <float32>[B, T, E] the last layer's output (after the final LayerNorm for pre-LN).
      hidden_states: <float32>[L + 1, B, T, E] the embedding output, then each layer's output
        (HF's ``hidden_states``; for pre-LN the residual stream, before the final LayerNorm).
      attentions: <float32>[L, B, H, T, T] the probabilities each layer used (the given maps for
        replaced heads), or None unless asked for.
    """

    hidden: jnp.ndarray
    hidden_states: jnp.ndarray
    attentions: jnp.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Bert:
    """A BERT encoder of shape ``config``; hashable, so it can be a static argument of ``jit``."""

    config: BertConfig

    def init(self, rng: jax.Array, *, pooler: bool = True) -> Params:
        """Random params (normal(0.02) weights, zero biases, unit LayerNorms, as HF initialises),
        with a pooler when ``pooler`` and a classifier when ``config.num_labels``."""
        c = self.config
        keys = iter(jax.random.split(rng, 16))

        def normal(*shape: int) -> jnp.ndarray:
            return 0.02 * jax.random.normal(next(keys), shape, jnp.float32)

        def linear(n_in: int, n_out: int, stack: tuple[int, ...] = ()) -> dict:
            return {
                "kernel": normal(*stack, n_in, n_out),
                "bias": jnp.zeros((*stack, n_out), jnp.float32),
            }

        def norm(stack: tuple[int, ...] = ()) -> dict:
            shape = (*stack, c.hidden_size)
            return {"scale": jnp.ones(shape, jnp.float32), "bias": jnp.zeros(shape, jnp.float32)}

        L, E, inter = (c.num_layers,), c.hidden_size, c.intermediate_size
        params: dict = {
            "embeddings": {
                "word": normal(c.vocab_size, E),
                "position": normal(c.max_position_embeddings, E),
                "token_type": normal(c.type_vocab_size, E),
                "ln": norm(),
            },
            "layers": {
                "query": linear(E, E, L),
                "key": linear(E, E, L),
                "value": linear(E, E, L),
                "attn_out": linear(E, E, L),
                "attn_ln": norm(L),
                "intermediate": linear(E, inter, L),
                "output": linear(inter, E, L),
                "out_ln": norm(L),
            },
        }
        if c.pre_ln:
            params["final_ln"] = norm()
        if pooler or c.num_labels:
            params["pooler"] = linear(E, E)
        if c.num_labels:
            params["classifier"] = linear(E, c.num_labels)
        return params

    def embed(self, params: Params, ids: jnp.ndarray) -> jnp.ndarray:
        """<int32>[B, T] word-piece ids -> <float32>[B, T, E] their word embeddings alone."""
        return jnp.take(params["embeddings"]["word"], ids, axis=0)

    def encode_embedded(
        self,
        params: Params,
        word_embeddings: jnp.ndarray,
        token_type_ids: jnp.ndarray,
        valid: jnp.ndarray,
        heads: HeadMaps | None = None,
        return_attention: bool = False,
        dropout_key: jax.Array | None = None,
        last_layer_rows: int | None = None,
    ) -> BertOutput:
        """Runs the encoder on given word embeddings.

        Args:
          word_embeddings: <float32>[B, T, E] (:meth:`embed` output, or anything in its place).
          token_type_ids: <int32>[B, T] segment ids (0 for a single sentence).
          valid: <bool>[B, T] positions holding input ([CLS], pieces, [SEP]); False is padding,
            which no query attends to.
          heads: maps <float32>[L, B, H, T, T] and select <bool>[L, H]; the selected heads'
            softmax probabilities are replaced by ``maps``.
          return_attention: also return every layer's probabilities.
          dropout_key: a PRNG key for training-time dropout (``config.hidden_dropout`` after the
            embeddings and each sublayer, ``config.attention_dropout`` on the attention
            probabilities, where HF applies them); None (the default): deterministic.
          last_layer_rows: compute the last layer at the first ``last_layer_rows`` positions
            only (1 for a read-out of [CLS] alone): its keys and values still cover every
            position, but its queries, attention output and feed-forward only those rows, so a
            [CLS] classifier skips most of a layer. ``hidden`` and ``hidden_states[-1]`` are
            then zero past those rows. None (the default): every position. Not with
            ``return_attention`` (the last map would have those rows only).
        """
        c = self.config
        T = word_embeddings.shape[1]
        emb = params["embeddings"]
        x = word_embeddings + jnp.take(emb["token_type"], token_type_ids, axis=0)
        x = x + emb["position"][:T][None]
        x = ops.layer_norm(x, emb["ln"], c.layer_norm_eps)
        layer_keys = None
        if dropout_key is not None:
            keys = jax.random.split(dropout_key, c.num_layers + 1)
            x = ops.dropout(keys[0], x, c.hidden_dropout)
            layer_keys = keys[1:]
        key_bias = ops.padded_key_bias(valid)

        if heads is None:
            maps, select = None, None
        else:
            maps, select = heads.maps, heads.select
        if last_layer_rows is not None and return_attention:
            raise ValueError("last_layer_rows and return_attention exclude each other: the "
                             "last layer's map would cover those rows only")
        last, states, probs = self._scan_layers(
            params["layers"], x, key_bias, maps, select, layer_keys, rows=last_layer_rows,
            return_attention=return_attention)
        if c.pre_ln:
            last = ops.layer_norm(last, params["final_ln"], c.layer_norm_eps)
        if last_layer_rows is not None:  # zero past the rows computed
            last = ops.pad_rows(last[:, :last_layer_rows], T)
        hidden_states = jnp.concatenate([x[None], states], axis=0)
        return BertOutput(hidden=last, hidden_states=hidden_states, attentions=probs)

    def _scan_layers(self, layers, h, key_bias, maps, select, keys, start=0, rows=None,
                     return_attention=False, given=None):
        """(output <float32>[B, T, E], the output of each layer run <float32>[L - start, B, T,
        E], each layer's probabilities <float32>[L, B, H, T, T] or None unless
        ``return_attention``): the stacked ``layers`` run on ``h`` in one ``lax.scan`` (the stack
        is never sliced, which would copy it).

        ``maps`` / ``select``: per layer, <float32>[L, B, H, T, T] / <bool>[L, H], or None.
        ``keys``: <key>[L] dropout keys or None. ``start`` (a Python int): the first layer run.
        ``given``: (maps <float32>[B, H, T, T], select <bool>[H]) for layer ``start`` alone, in
        place of ``maps`` / ``select``. ``rows``: the last layer computes the first ``rows``
        positions only, zero past them. From a ``start`` past 0, with ``rows`` or ``given`` this
        is :meth:`_scan_from` (the maps not returned).
        """
        if rows is not None or start > 0 or given is not None:
            if return_attention:
                raise ValueError("return_attention needs every layer at every position")
            return self._scan_from(layers, h, key_bias, maps, select, keys, int(start), rows,
                                   given)

        def step(h, xs):
            p, m, s, key = xs
            h, probs = self._layer(p, h, key_bias, m, s, key)
            return h, (h, probs if return_attention else None)

        last, (states, probs) = jax.lax.scan(step, h, (layers, maps, select, keys))
        return last, states, probs

    def _scan_from(self, layers, h, key_bias, maps, select, keys, start, rows, given):
        """:meth:`_scan_layers` from a static ``start``: layers ``start..L-1`` in a scan, the last
        one at ``rows`` positions when ``rows`` is given (then outside the scan). Each layer's
        params are indexed out of the stack inside the loop, so the stack is not copied; no
        ``lax.switch``, whose outputs XLA copies, which under reverse mode means every saved
        residual (Hao's attribution on MiniLM: 1.5x faster this way, ``benchmarks/RESULTS.md``)."""
        n = self.config.num_layers

        def at(tree, index):
            return jax.tree_util.tree_map(
                lambda x: jax.lax.dynamic_index_in_dim(x, index, keepdims=False), tree)

        def run(h, index, last):
            m, s = (given[0], given[1] & (index == start)) if given is not None else (
                at(maps, index), at(select, index))
            return self._layer(at(layers, index), h, key_bias, m, s, at(keys, index),
                               rows if last else None)[0]

        def step(h, index):
            h = run(h, index, False)
            return h, h

        if rows is None:
            h, states = jax.lax.scan(step, h, jnp.arange(start, n))
            return h, states, None
        h, states = jax.lax.scan(step, h, jnp.arange(start, n - 1))
        last = ops.pad_rows(run(h, n - 1, True), h.shape[1])
        return last, jnp.concatenate([states, last[None]], axis=0), None

    def encode_from(
        self,
        params: Params,
        hidden: jnp.ndarray,
        valid: jnp.ndarray,
        start: int,
        maps: jnp.ndarray | None = None,
        select: jnp.ndarray | None = None,
        last_layer_rows: int | None = None,
    ) -> jnp.ndarray:
        """The encoder's output from the states entering layer ``start`` (deterministic).

        Args:
          hidden: <float32>[B, T, E] the states entering layer ``start`` (``hidden_states[start]``
            of :meth:`encode_embedded`).
          start: the first layer to run, a Python int, 0 <= start < L: layers ``start..L-1``
            are traced, those below it are not in the program.
          maps: <float32>[B, H, T, T] attention for layer ``start``'s heads ``select`` <bool>[H];
            every head of a later layer computes its own. None: layer ``start`` computes its own.
          last_layer_rows: as :meth:`encode_embedded`'s.
        Returns:
          <float32>[B, T, E] what :meth:`encode_embedded` returns as ``hidden``.
        """
        c = self.config
        n = c.num_layers
        if not 0 <= start < n:
            raise ValueError(f"start layer {start} is not in [0, {n})")
        key_bias = ops.padded_key_bias(valid)
        h, _, _ = self._scan_layers(params["layers"], hidden, key_bias, None, None, None,
                                    start=start, rows=last_layer_rows,
                                    given=None if maps is None else (maps, select))
        if c.pre_ln:
            h = ops.layer_norm(h, params["final_ln"], c.layer_norm_eps)
        if last_layer_rows is not None:
            h = ops.pad_rows(h[:, :last_layer_rows], hidden.shape[1])
        return h

    def _layer(self, p, h, key_bias, maps, select, key=None, rows=None):
        """One block: self-attention then the feed-forward, each with residual + LayerNorm;
        dropout where HF's ``BertLayer`` has it when ``key`` is given. ``rows``: the output at
        the first ``rows`` positions only, <float32>[B, rows, E] (keys and values of every
        position); None: at every position."""
        c = self.config
        k_attn, k_out, k_ff = (None,) * 3 if key is None else jax.random.split(key, 3)
        eps = c.layer_norm_eps
        B, T, E = h.shape
        Q = T if rows is None else rows
        a_in = ops.layer_norm(h, p["attn_ln"], eps) if c.pre_ln else h

        # One [E, 3E] product for the queries, keys and values (fewer, larger matrix products;
        # [E, 2E] for keys and values when the queries are fewer rows), split straight into the
        # layouts the two batched products read without transposing: queries and values
        # [B, H, T, D], keys [B, H, D, T].
        names = _QKV if rows is None else _QKV[1:]
        fused = ops.dense(a_in, {"kernel": jnp.concatenate([p[n]["kernel"] for n in names], -1),
                             "bias": jnp.concatenate([p[n]["bias"] for n in names], -1)})
        # jnp.split, not indexing: its gradient is one concatenation, not three padded adds.
        parts = jnp.split(fused, len(names), axis=-1)
        if rows is not None:
            parts = [ops.dense(a_in[:, :Q], p["query"]), *parts]
        q, k, v = (t.reshape(B, -1, c.num_heads, c.head_size) for t in parts)
        q, k_t, v = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)
        # Scaled after the product, in HF's order, so the scores round as HF's do.
        scores = jnp.matmul(q, k_t) * (c.head_size**-0.5)
        probs = jax.nn.softmax(scores + key_bias, axis=-1)
        if maps is not None:
            probs = jnp.where(select[None, :, None, None], maps[..., :Q, :], probs)
        dropped = ops.dropout(k_attn, probs, c.attention_dropout)
        context = jnp.matmul(dropped, v).transpose(0, 2, 1, 3).reshape(B, Q, E)
        attended = ops.dropout(k_out, ops.dense(context, p["attn_out"]), c.hidden_dropout)
        h = h[:, :Q]
        if c.pre_ln:
            h = h + attended
            f_in = ops.layer_norm(h, p["out_ln"], eps)
        else:
            h = ops.layer_norm(attended + h, p["attn_ln"], eps)
            f_in = h
        inner = ops.gelu(ops.dense(f_in, p["intermediate"]))
        out = ops.dropout(k_ff, ops.dense(inner, p["output"]), c.hidden_dropout)
        h = h + out if c.pre_ln else ops.layer_norm(out + h, p["out_ln"], eps)
        return h, probs

    def encode(
        self,
        params: Params,
        ids: jnp.ndarray,
        token_type_ids: jnp.ndarray,
        valid: jnp.ndarray,
        heads: HeadMaps | None = None,
        return_attention: bool = False,
        dropout_key: jax.Array | None = None,
        last_layer_rows: int | None = None,
    ) -> BertOutput:
        """:meth:`encode_embedded` of ``ids``' own embeddings <int32>[B, T]."""
        return self.encode_embedded(
            params, self.embed(params, ids), token_type_ids, valid, heads, return_attention,
            dropout_key, last_layer_rows,
        )

    def self_attention(
        self, params: Params, ids: jnp.ndarray, token_type_ids: jnp.ndarray, valid: jnp.ndarray
    ) -> jnp.ndarray:
        """<float32>[L, B, H, T, T] every layer's own attention probabilities."""
        return self.encode(params, ids, token_type_ids, valid, return_attention=True).attentions

    def pool(self, params: Params, hidden: jnp.ndarray) -> jnp.ndarray:
        """HF's pooler: <float32>[B, T, E] -> ``tanh(dense(hidden[:, 0]))`` <float32>[B, E]."""
        return jnp.tanh(ops.dense(hidden[:, 0], params["pooler"]))
