"""How far the members of a stack lie from a base model, instance by instance (W&P's "expected
variance"): per instance the JSD between attentions and the TVD between output distributions.

The per-batch comparison is a :class:`~jaxattn.studies.stage.Stage`, so batching and writing
rows back are the runner's (:func:`~jaxattn.studies.runner.compute_stage`), as for every analysis.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.errors import RunError
from jaxattn.core.metrics import jsd, kl, tvd
from jaxattn.core.protocol import AttentionModel, Batch, Params, forward
from jaxattn.data.batching import EncodedSplit
from jaxattn.runs.run import load_run
from jaxattn.runtime.files import write_atomic
from jaxattn.studies.runner import compute_stage
from jaxattn.studies.stage import Stage
from jaxattn.training.train_state import stack_trees

MEMBER_KEYS = ("jsd", "kl", "tvd", "probs")  # arrays with a member axis


@dataclasses.dataclass
class Comparison:
    """Per-instance distances between M members and a base model on one split.

    Attributes:
      jsd: <float32>[M, N] JSD(member attention, base attention), nats, real tokens only.
      kl: <float32>[M, N] KL(member attention || base attention + eps).
      tvd: <float32>[M, N] TVD between the output distributions.
      probs: <float32>[M, N, K] the members' output distributions.
      base_probs: <float32>[N, K] the base model's.
      max_attn: <float32>[N] the base model's largest attention weight.
    """

    jsd: np.ndarray
    kl: np.ndarray
    tvd: np.ndarray
    probs: np.ndarray
    base_probs: np.ndarray
    max_attn: np.ndarray

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **dataclasses.asdict(self))
        write_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Comparison:
        try:
            with np.load(path) as data:
                return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except Exception as err:  # a truncated or foreign file
            raise RunError(
                f"{path}: damaged result file ({type(err).__name__}); delete it to recompute"
            ) from None


@dataclasses.dataclass(frozen=True)
class _Options:
    batch_size: int
    buckets: tuple[int, ...]
    kl_eps: float


def _compare_batch(model: AttentionModel, params, batch: Batch, opts: _Options) -> dict:
    base_params, members = params
    return _compare(model, base_params, members, batch, jnp.float32(opts.kl_eps))


def _compare_impl(model, base_params, params, batch, kl_eps):
    base_logits, base_attn = forward(model, base_params, batch)
    logits, attn = jax.vmap(lambda p: forward(model, p, batch))(params)  # [M, B, C], [M, B, T]
    base_probs = model.probs(base_logits)
    probs = jax.vmap(model.probs)(logits)
    out = {
        "jsd": jsd(attn, base_attn[None]),
        "kl": kl(attn, base_attn[None], eps=kl_eps),
        "tvd": tvd(probs, base_probs[None]),
        "probs": probs,
        "base_probs": base_probs,
        "max_attn": base_attn.max(axis=-1),
    }
    # Rows first: the runner writes rows back along the leading axis.
    return {k: jnp.moveaxis(v, 0, 1) if k in MEMBER_KEYS else v for k, v in out.items()}


_compare = jax.jit(_compare_impl, static_argnums=0)

COMPARE = Stage("compare", _compare_batch)


def compare_members(
    model: AttentionModel,
    base_params: Params,
    params: Params,
    split: EncodedSplit,
    batch_size: int = 256,
    buckets: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024),
    kl_eps: float = 0.0,
) -> Comparison:
    """Compares every member of the stack ``params`` with ``base_params`` on every instance."""
    opts = _Options(batch_size, tuple(buckets), kl_eps)
    arrays, _ = compute_stage(
        COMPARE, model, (base_params, params), split, np.arange(len(split)), opts, progress=False
    )
    return Comparison(**{
        k: np.moveaxis(v, 0, 1).astype(np.float32) if k in MEMBER_KEYS else v.astype(np.float32)
        for k, v in arrays.items()
    })


def load_stacked_params(dirs: Sequence[Path]) -> Params:
    """The selected parameters of several run directories, stacked."""

    return stack_trees([load_run(d).params for d in dirs])
