"""Mixed precision: float32 parameters and optimizer state, bfloat16 compute (``train.precision``).

The training step casts the floating-point parameters to bfloat16 before the forward pass; the
cast is differentiable, so the gradients arrive in float32 and AMSGrad updates float32 weights.
The loss is taken in float32 from float32 logits. Evaluation, model selection and every analysis
use the float32 parameters. bfloat16 halves the memory traffic of the matmuls and the LSTM
recurrence on GPUs (Ampere and later) and TPUs; a CPU emulates it, slower than float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PRECISIONS = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_params(params, precision: str):
    """``params`` with every floating-point leaf cast to ``precision``'s dtype (float32: as is)."""
    dtype = PRECISIONS[precision]
    if dtype == jnp.float32:
        return params
    return jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


def float32_logits(logits: jnp.ndarray) -> jnp.ndarray:
    """<float32>[B, C] whatever the compute dtype, so losses and metrics are taken in float32."""
    return logits.astype(jnp.float32)
