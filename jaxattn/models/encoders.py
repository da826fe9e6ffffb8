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


class BiLSTMEncoder(nn.Module):
    """One-layer bidirectional LSTM; H = 2 * hidden_size.

    Both directions run in one ``lax.scan`` over time-major inputs, with the input projections of
    both hoisted out of the recurrence into one matmul. The backward direction reads the time axis
    reversed and leaves its state at zero until it reaches each row's last real token (EOS), so it
    starts there, as PyTorch's packed sequences do, with no gathers (whose gradients are slow
    scatters on CPU). Gate order i, f, g, o and a single bias (PyTorch's b_ih + b_hh) make the
    weights map one-to-one onto ``torch.nn.LSTM``.
    """

    hidden_size: int = 128
    unroll: int = 1

    @nn.compact
    def __call__(self, embedded: jnp.ndarray, tokens: jnp.ndarray):
        h = self.hidden_size
        e = embedded.shape[-1]
        init = _torch_uniform(1.0 / math.sqrt(h))
        w_ih = self.param("w_ih", init, (2, e, 4 * h))
        w_hh = self.param("w_hh", init, (2, h, 4 * h))
        bias = self.param("bias", init, (2, 4 * h))
        nonpad = tokens != PAD
        lengths = nonpad.sum(axis=1)
        steps = embedded.shape[1]
        proj = jnp.einsum("bte,deg->tdbg", embedded, w_ih) + bias[None, :, None, :]
        proj = jnp.stack([proj[:, 0], proj[::-1, 1]], axis=1)  # [T, 2, B, 4h], backward reversed
        t = jnp.arange(steps)[:, None]
        valid = jnp.stack([t < lengths[None, :], (steps - 1 - t) < lengths[None, :]], axis=1)

        def step(carry, inputs):
            h_prev, c_prev = carry  # [2, B, h]
            proj_t, valid_t = inputs
            gates = proj_t + jnp.einsum("dbh,dhg->dbg", h_prev, w_hh)
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
            h_new = jax.nn.sigmoid(o) * jnp.tanh(c)
            # Outside a row (padding) the state stays as it was: zero for the backward direction
            # before the row's end, the last real state for the forward one after it.
            keep = valid_t[..., None]
            h_new, c = jnp.where(keep, h_new, h_prev), jnp.where(keep, c, c_prev)
            return (h_new, c), h_new

        zeros = jnp.zeros((2, embedded.shape[0], h), embedded.dtype)
        (h_last, _), outs = jax.lax.scan(step, (zeros, zeros), (proj, valid), unroll=self.unroll)
        hidden = jnp.concatenate([outs[:, 0], outs[::-1, 1]], axis=-1)  # [T, B, 2h]
        hidden = jnp.swapaxes(hidden, 0, 1) * nonpad[..., None]
        summary = jnp.concatenate([h_last[0], h_last[1]], axis=-1)
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
