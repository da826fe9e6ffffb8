"""The LSTM pieces: PyTorch's initialisation, one cell step, the bidirectional recurrence as
one ``lax.scan`` with a hand-written backward pass, and the BiLSTM encoder built on them
(:mod:`jaxattn.models.ortho_lstm` builds its recurrences on the same cell)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(bound: float):
    """PyTorch's default LSTM/Linear init, U(-bound, bound), so twins start alike."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def lstm_cell(proj_t, h_prev, c_prev, w_hh):
    """One step of both directions: (gates i, f, g, o activated, concatenated; c; tanh(c))."""
    gates = proj_t + jnp.einsum("dbh,dhg->dbg", h_prev, w_hh)
    # sigmoid(x) = (1 + tanh(x / 2)) / 2, so one tanh activates all four gates (i, f, o scaled
    # by 1/2, g by 1). XLA's CPU logistic costs about twice its tanh; this halved the step time.
    scale = jnp.repeat(jnp.asarray([0.5, 0.5, 1.0, 0.5], gates.dtype), w_hh.shape[1])[None, None]
    acts = jnp.tanh(gates * scale) * scale + (1.0 - scale)
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    c = f * c_prev + i * g
    tanh_c = jnp.tanh(c)
    return acts, c, o * tanh_c, tanh_c


def _lstm_scan(proj, valid, w_hh, keep_residuals: bool):
    zeros = jnp.zeros(proj.shape[1:-1] + (w_hh.shape[1],), proj.dtype)

    def step(carry, inputs):
        h_prev, c_prev = carry  # [2, B, h]
        proj_t, valid_t = inputs
        acts, c, h, tanh_c = lstm_cell(proj_t, h_prev, c_prev, w_hh)
        # Outside a row (padding) the state stays as it was: zero for the backward direction
        # before the row's end, the last real state for the forward one after it.
        keep = valid_t[..., None]
        h, c = jnp.where(keep, h, h_prev), jnp.where(keep, c, c_prev)
        return (h, c), ((h, acts, c, tanh_c) if keep_residuals else h)

    (h_last, _), stacked = jax.lax.scan(step, (zeros, zeros), (proj, valid))
    return h_last, stacked


@jax.custom_vjp
def lstm_recurrence(
    proj: jnp.ndarray, valid: jnp.ndarray, w_hh: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The LSTM recurrence of both directions at once, from hoisted input projections.

    Args:
      proj: <float>[T, 2, B, 4h] input projections plus bias, per direction, in the order each
        direction reads them (the backward direction's time axis already reversed).
      valid: <bool>[T, 2, B] whether the direction's step t is a real position of row b; the state
        is carried unchanged through the others.
      w_hh: <float>[2, h, 4h] recurrent weights (gate order i, f, g, o).
    Returns:
      outs <float>[T, 2, B, h], the hidden state after every step, and the final states
      <float>[2, B, h].

    The backward pass is written by hand (the textbook LSTM backward): autodiff of the scan
    re-reads a transposed ``w_hh`` and accumulates ``dw_hh`` inside the loop at every step, while
    here the loop carries only (dh, dc) and ``dw_hh`` is one matmul over all steps afterwards.
    """
    h_last, outs = _lstm_scan(proj, valid, w_hh, keep_residuals=False)
    return outs, h_last


def _lstm_recurrence_fwd(proj, valid, w_hh):
    h_last, (outs, acts, cs, tanh_cs) = _lstm_scan(proj, valid, w_hh, keep_residuals=True)
    return (outs, h_last), (valid, w_hh, outs, acts, cs, tanh_cs)


def _lstm_recurrence_bwd(residuals, cotangents):
    valid, w_hh, outs, acts, cs, tanh_cs = residuals
    d_outs, d_h_last = cotangents
    zero = jnp.zeros_like(outs[:1])
    h_prevs = jnp.concatenate([zero, outs[:-1]])  # the state each step started from
    c_prevs = jnp.concatenate([zero, cs[:-1]])
    w_t = jnp.swapaxes(w_hh, 1, 2)  # [2, 4h, h], laid out once for the per-step matmul

    def step(carry, inputs):
        dh, dc = carry  # gradients w.r.t. the state after this step
        d_out, valid_t, acts_t, c_prev, tanh_c = inputs
        dh = dh + d_out
        i, f, g, o = jnp.split(acts_t, 4, axis=-1)
        dc_total = dc + dh * o * (1.0 - tanh_c * tanh_c)
        d_gates = jnp.concatenate(
            [
                dc_total * g * i * (1.0 - i),
                dc_total * c_prev * f * (1.0 - f),
                dc_total * i * (1.0 - g * g),
                dh * tanh_c * o * (1.0 - o),
            ],
            axis=-1,
        )
        keep = valid_t[..., None]
        d_gates = jnp.where(keep, d_gates, 0.0)
        dh_prev = jnp.einsum("dbg,dgh->dbh", d_gates, w_t) + jnp.where(keep, 0.0, dh)
        dc_prev = jnp.where(keep, dc_total * f, dc)
        return (dh_prev, dc_prev), d_gates

    _, d_proj = jax.lax.scan(
        step,
        (d_h_last, jnp.zeros_like(d_h_last)),
        (d_outs, valid, acts, c_prevs, tanh_cs),
        reverse=True,
    )
    d_w_hh = jnp.einsum("tdbh,tdbg->dhg", h_prevs, d_proj)
    return d_proj, None, d_w_hh


lstm_recurrence.defvjp(_lstm_recurrence_fwd, _lstm_recurrence_bwd)


class BiLSTMEncoder(nn.Module):
    """One-layer bidirectional LSTM; H = 2 * hidden_size.

    Both directions run in one ``lax.scan`` over time-major inputs (:func:`lstm_recurrence`, with
    a hand-written backward pass). The input projections of both are the per-token features, one
    matmul outside the recurrence. The backward direction reads the time axis reversed and leaves
    its state at zero until it reaches each row's last real token (EOS), so it starts there, as
    PyTorch's packed sequences do, with no gathers (whose gradients are slow scatters on CPU).
    Gate order i, f, g, o and a single bias (PyTorch's b_ih + b_hh) make the weights map
    one-to-one onto ``torch.nn.LSTM``.
    """

    input_size: int
    hidden_size: int = 128

    def setup(self):
        h, e = self.hidden_size, self.input_size
        init = torch_uniform(1.0 / math.sqrt(h))
        self.w_ih = self.param("w_ih", init, (2, e, 4 * h))
        self.w_hh = self.param("w_hh", init, (2, h, 4 * h))
        self.bias = self.param("bias", init, (2, 4 * h))

    def featurize(self, embedded: jnp.ndarray) -> jnp.ndarray:
        """<float>[B, T, E] -> input projections plus bias <float>[B, T, 2, 4h]."""
        return jnp.einsum("bte,deg->btdg", embedded, self.w_ih) + self.bias[None, None]

    def contextualize(self, features: jnp.ndarray, valid: jnp.ndarray):
        nonpad = valid
        lengths = nonpad.sum(axis=1)
        steps = features.shape[1]
        proj = jnp.transpose(features, (1, 2, 0, 3))  # [T, 2, B, 4h]
        proj = jnp.stack([proj[:, 0], proj[::-1, 1]], axis=1)  # backward direction reversed
        t = jnp.arange(steps)[:, None]
        valid = jnp.stack([t < lengths[None, :], (steps - 1 - t) < lengths[None, :]], axis=1)
        outs, h_last = lstm_recurrence(proj, valid, self.w_hh)
        hidden = jnp.concatenate([outs[:, 0], outs[::-1, 1]], axis=-1)  # [T, B, 2h]
        hidden = jnp.swapaxes(hidden, 0, 1) * nonpad[..., None]
        summary = jnp.concatenate([h_last[0], h_last[1]], axis=-1)
        return hidden, summary

    def __call__(self, embedded: jnp.ndarray, valid: jnp.ndarray):
        return self.contextualize(self.featurize(embedded), valid)
