"""The Orthogonal LSTM of Mohankumar et al. (2020) and a plain LSTM of either direction count.

Orthogonal LSTM: after each step the new state ``h'_t`` is made orthogonal to ``m``, the mean of
the direction's previous (already orthogonalised) states over positions that hold input,

    h_t = h'_t - (h'_t . m) / (m . m + 1e-6) m,

and ``h_t`` is what the recurrence carries forward (reference code ``akashkm99/
Interpretable-Attention``, ``model/modules/ortholstm.py``). Padding never enters ``m``. Before the
first step ``m = 0`` and the projection vanishes, so there is nothing to guard against. (The
reference divides the running sum by ``t + 1`` rather than by the ``t`` states in it: the same
direction, so the same projection up to the 1e-6.)

:class:`RecurrentEncoder` runs one or two directions (``directions = 1`` with 256 units is the
published shape; 2 mirrors :class:`~jaxattn.models.lstm.BiLSTMEncoder`: the backward
direction starts at each row's last position holding input). With ``orthogonalize = False`` it is
a plain LSTM: the Diversity LSTM's unidirectional encoder. Its features are the input projections
(per token, affine), so the analyses' fast paths apply unchanged. The gradient is autodiff of the
``lax.scan``: the projection couples every step to all earlier ones, which the BiLSTM's
hand-written backward pass does not model.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxattn.models.lstm import lstm_cell, torch_uniform

# Added to m . m, as in the reference code, so that m = 0 (the first step) projects to zero.
ORTHO_EPS = 1e-6


def orthogonalize(h: jnp.ndarray, m: jnp.ndarray) -> jnp.ndarray:
    """``h - (h . m) / (m . m + 1e-6) m`` over the last axis; h, m <float>[..., H]."""
    coef = jnp.sum(h * m, axis=-1, keepdims=True) / (
        jnp.sum(m * m, axis=-1, keepdims=True) + ORTHO_EPS
    )
    return h - coef * m


def recurrence(
    proj: jnp.ndarray, valid: jnp.ndarray, w_hh: jnp.ndarray, ortho: bool
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The LSTM recurrence of D directions at once, optionally orthogonalised.

    Args:
      proj: <float>[T, D, B, 4h] input projections plus bias, each direction in its reading order.
      valid: <bool>[T, D, B] whether step t of the direction holds input for row b; elsewhere the
        state (and the running mean) is carried unchanged.
      w_hh: <float>[D, h, 4h] recurrent weights (gate order i, f, g, o).
      ortho: whether to orthogonalise each new state against the running mean.
    Returns:
      outs <float>[T, D, B, h] the (orthogonalised) state after every step, and the final states
      <float>[D, B, h].
    """
    zeros = jnp.zeros(proj.shape[1:-1] + (w_hh.shape[1],), proj.dtype)
    count0 = jnp.zeros(proj.shape[1:-1] + (1,), proj.dtype)

    def step(carry, inputs):
        h_prev, c_prev, total, count = carry
        proj_t, valid_t = inputs
        _, c, h, _ = lstm_cell(proj_t, h_prev, c_prev, w_hh)
        if ortho:
            # The mean of the previous states; count = 0 gives m = 0, hence no projection.
            h = orthogonalize(h, total / jnp.maximum(count, 1.0))
        keep = valid_t[..., None]
        h, c = jnp.where(keep, h, h_prev), jnp.where(keep, c, c_prev)
        total = total + jnp.where(keep, h, 0.0)
        return (h, c, total, count + keep), h

    (h_last, *_), outs = jax.lax.scan(step, (zeros, zeros, zeros, count0), (proj, valid))
    return outs, h_last


class RecurrentEncoder(nn.Module):
    """An LSTM of ``directions`` (1 or 2) directions; H = directions * hidden_size.

    Weights are laid out as :class:`~jaxattn.models.lstm.BiLSTMEncoder`'s (``w_ih`` [D, E, 4h],
    ``w_hh`` [D, h, 4h], one ``bias`` [D, 4h]), so a two-direction encoder without
    orthogonalisation computes exactly what the BiLSTM does.
    """

    input_size: int
    hidden_size: int = 128
    directions: int = 2
    ortho: bool = True

    def setup(self):
        d, h, e = self.directions, self.hidden_size, self.input_size
        init = torch_uniform(1.0 / math.sqrt(h))
        self.w_ih = self.param("w_ih", init, (d, e, 4 * h))
        self.w_hh = self.param("w_hh", init, (d, h, 4 * h))
        self.bias = self.param("bias", init, (d, 4 * h))

    def featurize(self, embedded: jnp.ndarray) -> jnp.ndarray:
        """<float>[B, T, E] -> input projections plus bias <float>[B, T, D, 4h]."""
        return jnp.einsum("bte,deg->btdg", embedded, self.w_ih) + self.bias[None, None]

    def contextualize(self, features: jnp.ndarray, valid: jnp.ndarray):
        """Features <float>[B, T, D, 4h], valid <bool>[B, T] -> (hidden <float>[B, T, D*h], zero
        at padding; summary <float>[B, D*h], each direction's last state)."""
        steps = features.shape[1]
        lengths = valid.sum(axis=1)
        t = jnp.arange(steps)[:, None]
        proj = jnp.transpose(features, (1, 2, 0, 3))  # [T, D, B, 4h]
        reading = [t < lengths[None, :]]
        if self.directions == 2:  # the backward direction reads the time axis reversed
            proj = jnp.stack([proj[:, 0], proj[::-1, 1]], axis=1)
            reading.append((steps - 1 - t) < lengths[None, :])
        outs, h_last = recurrence(proj, jnp.stack(reading, axis=1), self.w_hh, self.ortho)
        parts = [outs[:, 0]] + ([outs[::-1, 1]] if self.directions == 2 else [])
        hidden = jnp.swapaxes(jnp.concatenate(parts, axis=-1), 0, 1) * valid[..., None]
        summary = jnp.concatenate(list(h_last), axis=-1)
        return hidden, summary

    def __call__(self, embedded: jnp.ndarray, valid: jnp.ndarray):
        return self.contextualize(self.featurize(embedded), valid)
