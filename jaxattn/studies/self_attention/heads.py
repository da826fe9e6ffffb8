"""Head-level attention interventions as analysis stages (models with the self-attention seam).

=========  ===================================================================================
heads      per instance and (layer, head): the output's TVD and JSD from the original, and
           whether the decision flips, when that head's attention alone is replaced by uniform
           attention, by ``head_permutations`` permutations of the valid keys (median over
           them, as J&W do for pooling attention), by the next head's map of the same layer
           (``(l, (h + 1) mod H)``), or by zeros (Michel et al. 2019's head masking)
head_adv   J&W's adversarial search on one layer's attention (``head_adv_scope = "layer"``: all
           its heads at once; ``"head"``: one head at a time): the largest map JSD whose output
           stays within ``epsilon`` (TVD), for the layers ``head_adv_layers`` and the instances
           whose split row is below ``head_adv_instances`` (the rest are NaN)
=========  ===================================================================================

The computations are :func:`jaxattn.explain.head_interventions.intervene_heads` and
:func:`~jaxattn.explain.head_interventions.search_adversarial_heads`; each returns ``[B, L, H]``
statistics per batch, never maps. Both cost many encodings per instance (``heads``: ``L * H``
per intervention, times ``P`` for permutations), so they run only when asked for by name
(``jaxattn analyze --only heads,head_adv``). The report pieces (summaries, per-layer tables, the L x H map
figures, verdict rows) are in :mod:`.head_report`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.errors import ConfigError
from jaxattn.explain.head_interventions import (
    KINDS,
    intervene_heads_all,
    search_adversarial_heads,
)
from jaxattn.runtime import distributed
from jaxattn.studies.registry import random_key
from jaxattn.studies.self_attention import head_report
from jaxattn.studies.stage import Stage

DONOR_RULE = head_report.DONOR_RULE
SCOPES = ("layer", "head")
# The analysis options these stages add that hold text, not numbers (checked by check_options).
TEXT_OPTIONS = ("head_interventions", "head_adv_layers", "head_adv_scope")


def intervention_kinds(spec: str) -> tuple[str, ...]:
    """``"uniform,zero"`` -> ``("uniform", "zero")``, in :data:`KINDS` order."""
    names = {part.strip() for part in spec.split(",") if part.strip()}
    unknown = sorted(names - set(KINDS))
    if unknown or not names:
        raise ConfigError(f"analyze: option head_interventions={spec!r}: use a comma-separated "
                          f"subset of {', '.join(KINDS)}")
    return tuple(kind for kind in KINDS if kind in names)


def layers_in_scope(spec: str, n_layers: int | None = None) -> tuple[int, ...]:
    """0-based layers of ``head_adv_layers``: ``"last"``, ``"all"`` or 1-based numbers
    (``"1,6"``). Without ``n_layers`` only the form is checked (and ``()`` returned)."""
    spec = spec.strip()
    if spec in ("last", "all"):
        if n_layers is None:
            return ()
        return (n_layers - 1,) if spec == "last" else tuple(range(n_layers))
    try:
        numbers = sorted({int(part) for part in spec.split(",")})
    except ValueError:
        numbers = []
    if not numbers or numbers[0] < 1 or (n_layers is not None and numbers[-1] > n_layers):
        limit = "" if n_layers is None else f" (this model has {n_layers})"
        raise ConfigError(f"analyze: option head_adv_layers={spec!r}: use 'last', 'all' or "
                          f"comma-separated layer numbers from 1{limit}")
    return tuple(n - 1 for n in numbers) if n_layers is not None else ()


def check_options(opts) -> None:
    """A ConfigError naming the option unless the text options of these stages are well formed."""
    intervention_kinds(opts.head_interventions)
    layers_in_scope(opts.head_adv_layers)
    if opts.head_adv_scope not in SCOPES:
        raise ConfigError(f"analyze: option head_adv_scope={opts.head_adv_scope!r} is not one of "
                          f"{', '.join(repr(s) for s in SCOPES)}")


def next_head_donors(n_layers: int, n_heads: int) -> jnp.ndarray:
    """<int32>[L, H, 2]: head (l, h)'s donor is (l, (h + 1) mod H) (:data:`DONOR_RULE`)."""
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    return jnp.asarray(np.stack([layer, (head + 1) % n_heads], -1), jnp.int32)


def _shape(model, params, batch) -> tuple[int, int]:
    """(L, H) of the model's self-attention, without computing it."""
    n_layers, _, n_heads = jax.eval_shape(model.self_attention, params, batch).shape[:3]
    return n_layers, n_heads


def head_effects(model, params, batch, opts) -> dict:
    """``{kind}_tvd``, ``{kind}_jsd``, ``{kind}_flip`` <float32>[B, L, H] for every kind of
    ``opts.head_interventions``."""
    n_layers, n_heads = _shape(model, params, batch)
    kinds = intervention_kinds(opts.head_interventions)
    effects = intervene_heads_all(
        model, params, batch, kinds,
        key=random_key(opts.seed, "heads") if "permute" in kinds else None,
        num_permutations=opts.head_permutations if "permute" in kinds else 1,
        donor=next_head_donors(n_layers, n_heads) if "donor" in kinds else None,
        chunk=opts.heads_chunk,
    )
    out = {}
    for kind, got in effects.items():
        out.update({f"{kind}_tvd": got.tvd, f"{kind}_jsd": got.jsd, f"{kind}_flip": got.flip})
    return out


def head_adversaries(model, params, batch, opts) -> dict:
    """``max_jsd``, ``best_tvd``, ``found`` <float32>[B, L, S] (S = 1 for the layer scope, H for
    the head scope): NaN outside the layers and instances in scope."""
    n_layers, n_heads = _shape(model, params, batch)
    layers = layers_in_scope(opts.head_adv_layers, n_layers)
    width = 1 if opts.head_adv_scope == "layer" else n_heads
    index = np.asarray(distributed.fetch(batch.index))
    covered = (index >= 0) & (index < opts.head_adv_instances)
    shape = (len(index), n_layers, width)
    out = {name: np.full(shape, np.nan, np.float32) for name in ("max_jsd", "best_tvd", "found")}
    if not covered.any():  # a batch past the instances in scope costs nothing
        return out
    key = random_key(opts.seed, "head_adv")
    for layer in layers:
        for head in range(width):
            got = distributed.fetch(search_adversarial_heads(
                model, params, batch, jax.random.fold_in(key, layer * n_heads + head), layer,
                head, scope=opts.head_adv_scope, num_adversaries=opts.num_adversaries,
                steps=opts.head_adv_steps, learning_rate=opts.adv_learning_rate,
                epsilon=opts.epsilon,
            ))
            for name, value in (("max_jsd", got.max_jsd), ("best_tvd", got.best_tvd),
                                ("found", got.found)):
                out[name][covered, layer, head] = np.asarray(value, np.float32)[covered]
    return out


HEAD_SPECS: dict[str, Stage] = {
    "heads": Stage(
        "heads",
        head_effects,
        options=("head_interventions", "head_permutations", "seed", "epsilon"),
        batch_size="heads_batch_size",
        requires=("self_attention_seam",),
        summarize=head_report.summarize_heads,
        tables=head_report.heads_tables,
        figures=head_report.heads_figures,
        verdict=head_report.heads_verdict,
        settings=(("donor_rule", DONOR_RULE),),
        by_default=False,
    ),
    "head_adv": Stage(
        "head_adv",
        head_adversaries,
        options=("head_adv_scope", "head_adv_layers", "head_adv_instances", "head_adv_steps",
                 "num_adversaries", "adv_learning_rate", "epsilon", "seed"),
        batch_size="head_adv_batch_size",
        requires=("self_attention_seam",),
        summarize=head_report.summarize_head_adv,
        tables=head_report.head_adv_tables,
        figures=head_report.head_adv_figures,
        verdict=head_report.head_adv_verdict,
        by_default=False,
    ),
}
DESCRIPTIONS = {
    "heads": "each self-attention head's map replaced by uniform / permuted / the next head's / "
             "zeros: output TVD, JSD and flips per (layer, head) (models with the seam)",
    "head_adv": "adversarial self-attention per layer (J&W search): max map JSD within epsilon "
                "(head_adv_layers, first head_adv_instances instances)",
}
