"""Encoders: embedded tokens -> per-token hidden states and a summary vector.

Every encoder maps ``embedded <float32>[B, T, E]`` and ``tokens <int32>[B, T]`` to
``hidden <float32>[B, T, H]`` (zero at padding) and ``summary <float32>[B, H]`` (what a pair model
uses as the question / hypothesis vector).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxattn.data.vocab import PAD


def _torch_uniform(bound: float):
    """PyTorch's default LSTM/Linear init, U(-bound, bound), so twins start alike."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def reverse_within_length(x: jnp.ndarray, lengths: jnp.ndarray) -> jnp.ndarray:
    """Reverses each row's first ``lengths[b]`` steps, leaving its padding in place.

    Args:
      x: <float32>[B, T, ...].
      lengths: <int32>[B] number of non-pad steps.
    Returns:
      <float32>[B, T, ...]; applying it twice gives ``x`` back.
    """
    t = jnp.arange(x.shape[1])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=1)


class BiLSTMEncoder(nn.Module):
    """One-layer bidirectional LSTM; H = 2 * hidden_size.

    Both directions run in one ``lax.scan``: the input projections of both are hoisted out of the
    recurrence into one matmul, and the backward direction reads each row reversed within its length,
    so it starts at the row's last real token (EOS) rather than at padding. Gate order i, f, g, o
    and a single bias (PyTorch's b_ih + b_hh) make the weights map one-to-one onto ``torch.nn.LSTM``.
    """

    hidden_size: int = 128
    unroll: int = 4

    @nn.compact
    def __call__(self, embedded: jnp.ndarray, tokens: jnp.ndarray):
        h = self.hidden_size
        e = embedded.shape[-1]
        init = _torch_uniform(1.0 / math.sqrt(h))
        w_ih = self.param("w_ih", init, (2, e, 4 * h))
        w_hh = self.param("w_hh", init, (2, h, 4 * h))
        bias = self.param("bias", init, (2, 4 * h))
        nonpad = tokens != PAD
        lengths = nonpad.sum(axis=1).astype(jnp.int32)
        both = jnp.stack([embedded, reverse_within_length(embedded, lengths)])  # [2, B, T, E]
        proj = jnp.einsum("dbte,deg->tdbg", both, w_ih) + bias[None, :, None, :]  # [T, 2, B, 4h]

        def step(carry, proj_t):
            h_prev, c_prev = carry  # [2, B, h]
            gates = proj_t + jnp.einsum("dbh,dhg->dbg", h_prev, w_hh)
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
            h_new = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h_new, c), h_new

        zeros = jnp.zeros((2, embedded.shape[0], h), embedded.dtype)
        _, outs = jax.lax.scan(step, (zeros, zeros), proj, unroll=self.unroll)  # [T, 2, B, h]
        fwd = jnp.swapaxes(outs[:, 0], 0, 1)
        bwd = reverse_within_length(jnp.swapaxes(outs[:, 1], 0, 1), lengths)
        hidden = jnp.concatenate([fwd, bwd], axis=-1) * nonpad[..., None]
        last = jnp.clip(lengths - 1, 0)[:, None, None]
        summary = jnp.concatenate(
            [jnp.take_along_axis(fwd, last, axis=1)[:, 0], bwd[:, 0]], axis=-1
        )
        return hidden, summary


class CNNEncoder(nn.Module):
    """Conv1d with kernel sizes 1, 3, 5, 7 ('same' padding), ReLU, concatenated; H = 4 * filters.

    Padding positions are zeroed before and after the convolutions so a row's states do not depend
    on how much padding its batch has. The summary is the max over non-pad positions.
    """

    filters: int = 64
    kernel_sizes: tuple[int, ...] = (1, 3, 5, 7)

    @nn.compact
    def __call__(self, embedded: jnp.ndarray, tokens: jnp.ndarray):
        nonpad = (tokens != PAD)[..., None]
        x = embedded * nonpad
        outs = [
            nn.Conv(self.filters, (k,), padding="SAME", name=f"conv{k}")(x)
            for k in self.kernel_sizes
        ]
        hidden = jax.nn.relu(jnp.concatenate(outs, axis=-1)) * nonpad
        summary = jnp.max(jnp.where(nonpad, hidden, 0.0), axis=1)
        return hidden, summary


class AverageEncoder(nn.Module):
    """Per-token ``tanh(Linear(E -> hidden_size))`` with no context; the summary is the mean."""

    hidden_size: int = 128

    @nn.compact
    def __call__(self, embedded: jnp.ndarray, tokens: jnp.ndarray):
        nonpad = (tokens != PAD)[..., None]
        hidden = jnp.tanh(nn.Dense(self.hidden_size, name="projection")(embedded)) * nonpad
        count = jnp.maximum(nonpad.sum(axis=1), 1)
        return hidden, hidden.sum(axis=1) / count


def make_encoder(kind: str, hidden_size: int, cnn_filters: int, name: str) -> nn.Module:
    """The encoder registered under ``kind`` (``bilstm``, ``cnn``, ``average``)."""
    if kind == "bilstm":
        return BiLSTMEncoder(hidden_size, name=name)
    if kind == "cnn":
        return CNNEncoder(cnn_filters, name=name)
    if kind == "average":
        return AverageEncoder(hidden_size, name=name)
    raise ValueError(f"unknown encoder {kind!r}")


def encoder_output_size(kind: str, hidden_size: int, cnn_filters: int) -> int:
    """H for an encoder kind."""
    return {"bilstm": 2 * hidden_size, "cnn": 4 * cnn_filters, "average": hidden_size}[kind]
