"""Model-consistent adversarial training (W&P section 4): same predictions, different attention.

A fresh model of the base's architecture is trained on the training split with, per batch,

    loss = mean_i TVD(y_adv_i, y_base_i) - lambda * mean_i KL(a_adv_i || a_base_i + eps)

where ``y`` are output distributions, ``a`` attention distributions over the real tokens of instance
i, and the base model is frozen (its outputs and attention are recomputed per batch under
``stop_gradient``). The adversary's own attention is its learned attention. Lambda trades keeping the
base's predictions against moving away from its attention; a sweep over lambda traces the trade-off
curve that W&P plot over the seed-variance cloud.

Why ``eps`` (default 1e-10, the constant W&P's own ``kld`` used): masked positions are 0 in both
distributions and :func:`jaxattn.core.metrics.kl` drops them exactly, so padding never gives NaN (the
published loss did). But the base's softmax can underflow to exactly 0 on a *real* token when its
attention is peaked; there KL is +inf and its gradient NaN. Adding eps to ``a_base`` caps each log
ratio at ``log(1/eps)`` (23 nats) and changes KL by at most ``eps * T`` relative elsewhere.

The published code differs in three ways, each an option here and off by default
(:class:`AdversaryOptions`): model selection on the test split, TVD taken as half the difference of
the sigmoid outputs for binary tasks (half the true TVD), and batch losses and reported metrics summed
over instances rather than averaged.

All lambdas of a sweep train together as one stack (:func:`jaxattn.runs.seeds.train_stack`): one jitted
step ``vmap``-ped over the lambdas, the same initialisation and batch order for all, so that the
only difference between the sweep's adversaries is lambda. Each adversary is saved as a run
directory, so it can serve as the imposed attention of another run (``train.imposed_run``).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxattn.config import Config, ConfigError
from jaxattn.core.metrics import classification_scores, kl, tvd
from jaxattn.core.protocol import forward, is_binary
from jaxattn.data.batching import Batch, num_batches, training_batches
from jaxattn.data.prepare import Prepared
from jaxattn.models.model import Model, Params
from jaxattn.runs.fit import run_metrics, write_result
from jaxattn.runs.run import Run, initial_params, is_finished_run, model_for, write_run
from jaxattn.runtime import distributed
from jaxattn.studies.comparison import Comparison, compare_members
from jaxattn.training.config import TrainConfig
from jaxattn.training.optimizers import make_optimizer
from jaxattn.training.train_state import (
    init_state,
    load_checkpoint,
    member,
    save_checkpoint,
    stack_trees,
)
from jaxattn.training.trainer import (
    first_batch,
    over_members,
    over_processes,
    train_members,
)

DEFAULT_LAMBDAS = (0.0, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclasses.dataclass(frozen=True)
class AdversaryOptions:
    """How adversaries are trained and scored (the published quirks are off by default).

    Attributes:
      kl_eps: added to the base attention inside KL (see the module docstring).
      selection: split whose objective selects each adversary's epoch (``dev``; W&P used the
        training loss, J&W-era code the test split: ``test``).
      half_binary_tvd: W&P's TVD for binary tasks, ``0.5 * |p_adv - p_base|`` (half the true TVD).
      summed: sum batch losses and reported TVD/JSD/KL over instances (W&P) instead of averaging.
      seed_offset: the adversary's initialisation seed is the base's ``train.seed`` plus this.
    """

    kl_eps: float = 1e-10
    selection: str = "dev"
    half_binary_tvd: bool = False
    summed: bool = False
    seed_offset: int = 1000

    def __post_init__(self):
        if self.selection not in ("dev", "test"):
            raise ConfigError(f"adversary selection {self.selection!r} is not dev or test")
        if self.kl_eps < 0:
            raise ConfigError("adversary kl_eps must be >= 0")

    def tvd_scale(self, model: Model) -> float:
        return 0.5 if self.half_binary_tvd and is_binary(model) else 1.0


def adversarial_terms(
    model: Model, params: Params, base_params: Params, batch: Batch, options: AdversaryOptions
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-instance output TVD and attention KL between the adversary and the frozen base.

    Returns:
      tvd: <float32>[B] TVD(y_adv, y_base) (halved for binary under ``half_binary_tvd``).
      kl: <float32>[B] KL(a_adv || a_base + eps) over real tokens.
    """
    base_logits, base_attn = forward(model, base_params, batch)
    base_probs = jax.lax.stop_gradient(model.probs(base_logits))
    base_attn = jax.lax.stop_gradient(base_attn)
    logits, attn = forward(model, params, batch)
    distance = tvd(model.probs(logits), base_probs) * options.tvd_scale(model)
    return distance, kl(attn, base_attn, eps=options.kl_eps)


def adversarial_objective(
    model: Model,
    params: Params,
    base_params: Params,
    batch: Batch,
    lam: jnp.ndarray,
    options: AdversaryOptions,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(:func:`adversarial_loss`, the per-instance terms summed over the batch for the log)."""
    distance, divergence = adversarial_terms(model, params, base_params, batch, options)
    per = (distance - lam * divergence) * batch.weights
    objective = per.sum() if options.summed else per.sum() / jnp.maximum(batch.weights.sum(), 1.0)
    return objective, per.sum()


def adversarial_loss(
    model: Model,
    params: Params,
    base_params: Params,
    batch: Batch,
    lam: jnp.ndarray,
    options: AdversaryOptions,
) -> jnp.ndarray:
    """``reduce_i [TVD_i - lambda * KL_i]`` over the batch's real rows (mean, or sum if ``summed``)."""
    return adversarial_objective(model, params, base_params, batch, lam, options)[0]


def make_adversary_step(
    model: Model, optimizer: optax.GradientTransformation, options: AdversaryOptions
):
    """A jitted ``step(params, opt_state, batch, lam, base_params) -> (params, opt_state, loss)``;
    ``loss`` sums the per-instance objective terms (for the log).

    ``jax.vmap`` it over ``(params, opt_state, lam)`` to train a lambda sweep at once.
    """

    def step(params, opt_state, batch, lam, base_params):
        (_, logged), grads = jax.value_and_grad(
            lambda p: adversarial_objective(model, p, base_params, batch, lam, options), has_aux=True
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, logged

    return jax.jit(step, donate_argnums=(0, 1))


def adversary_dir(out_dir: str | Path, lam: float) -> Path:
    return Path(out_dir) / f"lambda_{lam:g}"


def adversary_config(base: Config, options: AdversaryOptions) -> Config:
    """The adversary's config: the base's, with its own initialisation seed."""
    cfg = copy.deepcopy(base)
    cfg.train.seed = base.train.seed + options.seed_offset
    cfg.train.attention, cfg.train.imposed_run = "learned", ""
    return cfg


def reduce_instances(values: np.ndarray, options: AdversaryOptions) -> np.ndarray:
    """Mean over the last (instance) axis, or the sum under ``summed``."""
    return values.sum(axis=-1) if options.summed else values.mean(axis=-1)


def summarise_adversaries(
    model: Model,
    comp: Comparison,
    labels: np.ndarray,
    lambdas: Sequence[float],
    options: AdversaryOptions,
) -> list[dict]:
    """Per adversary of ``comp``: TVD, JSD, KL to the base, the objective, and scores vs ``labels``.

    TVD/JSD/KL are averaged over instances (summed under ``options.summed``).
    """
    tvds = reduce_instances(comp.tvd * options.tvd_scale(model), options)
    jsds, kls = reduce_instances(comp.jsd, options), reduce_instances(comp.kl, options)
    out = []
    for m, lam in enumerate(lambdas):
        gold = classification_scores(comp.probs[m], labels, is_binary(model))
        out.append({
            **gold,
            "tvd": float(tvds[m]),
            "jsd": float(jsds[m]),
            "kl": float(kls[m]),
            "objective": float(tvds[m] - lam * kls[m]),
        })
    return out


def train_adversaries(
    base: Run,
    lambdas: Sequence[float],
    prepared: Prepared,
    out_dir: str | Path,
    options: AdversaryOptions = AdversaryOptions(),
    progress: bool = True,
) -> list[Path]:
    """Trains one adversary per lambda against ``base`` into ``out_dir/lambda_<l>``.

    Finished adversaries are kept; the rest train together as one stack, resumable per epoch.
    Returns the run directories in the order of ``lambdas``.
    """
    out_dir = Path(out_dir)
    dirs = [adversary_dir(out_dir, lam) for lam in lambdas]
    pending = [lam for lam, d in zip(lambdas, dirs) if not is_finished_run(d)]
    if pending:
        cfg = adversary_config(base.config, options)
        model = model_for(cfg, prepared, len(prepared.vocab))
        if model != base.model:
            raise ConfigError(
                f"{base.path}: the adversary's architecture differs from the base run's")
        params, embeddings = initial_params(cfg, model, prepared)
        meta = {"config": cfg.to_dict(), "base": str(base.path.resolve())}

        def write(lam, params, metrics):
            metrics.update(embeddings=embeddings,
                           model={"encoder": cfg.model.encoder, "attention": cfg.model.attention})
            write_run(adversary_dir(out_dir, lam), cfg, prepared, params, metrics)

        train_adversary_stack(model, base.params, params, cfg.train, pending, prepared, out_dir,
                              options, progress, meta, str(base.path.resolve()), write)
    return dirs


def train_model_adversaries(
    model: Model,
    base_params: Params,
    config: TrainConfig,
    lambdas: Sequence[float],
    prepared: Prepared,
    out_dir: str | Path,
    options: AdversaryOptions = AdversaryOptions(),
    progress: bool = True,
    base_name: str = "the base model",
) -> list[Path]:
    """:func:`train_adversaries` for a model brought through the Python API: ``model`` (any
    :class:`~jaxattn.core.protocol.AttentionModel`) with ``base_params`` is the base, ``config``
    its training settings; each adversary is a folder of ``params.msgpack`` and ``metrics.json``
    (read back with :func:`jaxattn.runs.fit.read_params`)."""
    out_dir = Path(out_dir)
    dirs = [adversary_dir(out_dir, lam) for lam in lambdas]
    pending = [lam for lam, d in zip(lambdas, dirs) if not is_finished_run(d)]
    if pending:
        tc = dataclasses.replace(config, seed=config.seed + options.seed_offset)
        params = model.init(jax.random.key(tc.seed), first_batch(prepared.splits["train"]))
        meta = {"train": dataclasses.asdict(tc), "model": repr(model)}

        def write(lam, params, metrics):
            write_result(adversary_dir(out_dir, lam), params, metrics)

        train_adversary_stack(model, base_params, params, tc, pending, prepared, out_dir,
                              options, progress, meta, base_name, write)
    return dirs


def train_adversary_stack(
    model: Model,
    base_params: Params,
    init_params: Params,
    tc: TrainConfig,
    lambdas: Sequence[float],
    prepared: Prepared,
    out_dir: Path,
    options: AdversaryOptions,
    progress: bool,
    meta: dict,
    base_name: str,
    write: Callable[[float, Params, dict], None],
) -> None:
    """Trains one adversary of ``model`` per lambda against ``base_params``, all from
    ``init_params`` as one stack (resumable per epoch from ``out_dir``'s checkpoint, which must
    match ``meta``); ``write(lambda, params, metrics)`` saves each selected adversary."""
    optimizer = make_optimizer(tc, len(prepared.splits["train"]))
    lam = np.asarray(lambdas, np.float32)
    state = init_state(stack_trees([init_params] * len(lambdas)), optimizer)
    ckpt = out_dir / "adversary_checkpoint.msgpack"
    meta = {**meta, "lambdas": [float(x) for x in lambdas],
            "options": dataclasses.asdict(options)}
    state = load_checkpoint(ckpt, state, meta) or state

    one_step = make_adversary_step(model, optimizer, options)
    stacked_step = over_members(one_step, (True, False, True))
    if distributed.process_count() > 1:  # the lambdas spread over the processes' devices
        stacked_step = over_processes(stacked_step, len(lambdas), (True, False, True))
    lam_device = jnp.asarray(lam)

    def step(params, opt_state, batch):
        return stacked_step(params, opt_state, batch, lam_device, base_params)

    train_split = prepared.splits["train"]

    def epoch_batches(epoch: int) -> Iterator[Batch]:
        rng = np.random.default_rng(tc.seed * 1000 + epoch)
        return training_batches(train_split, tc.batch_size, rng, tc.sort_noise, tc.buckets)

    def evaluate(params):
        scored = {}
        for name in ("dev", "test"):
            split = prepared.splits[name]
            comp = compare_members(model, base_params, params, split, tc.eval_batch_size,
                                   tc.buckets, options.kl_eps)
            scored[name] = summarise_adversaries(model, comp, split.labels, lambdas, options)
        records = [{"dev": d, "test": t} for d, t in zip(scored["dev"], scored["test"])]
        # The adversary minimises its objective; selection maximises.
        return np.asarray([-r[options.selection]["objective"] for r in records]), records

    start = time.perf_counter()
    state = train_members(
        step, state, tc.epochs, epoch_batches, num_batches(len(train_split), tc.batch_size),
        len(train_split), evaluate, on_epoch_end=lambda st: save_checkpoint(ckpt, st, meta),
        progress=progress, desc=f"adversary x{len(lambdas)}",
        score_name=f"{options.selection} objective", score_sign=-1.0,
        member_names=[f"lambda {value:g}" for value in lambdas],
    )
    elapsed = time.perf_counter() - start
    gold = ("accuracy", "f1", "auc", "n")
    for m, value in enumerate(lambdas):
        metrics = run_metrics(state, m, tc, model, prepared, elapsed)
        best = {name: metrics[name] for name in ("dev", "test")}  # with the adversarial measures
        metrics.update(
            {name: {k: v for k, v in best[name].items() if k in gold} for name in ("dev", "test")},
            selection=options.selection,
            selection_metric="adversarial objective (lower is better)",
            attention="learned",
            adversary={
                "lambda": float(value),
                "base_run": base_name,
                "options": dataclasses.asdict(options),
                "test": best["test"],
                "dev": best["dev"],
                "trained_as": f"stack of {len(lambdas)} lambdas, vmapped",
            },
        )
        write(float(value), member(state.best_params, m), metrics)
    ckpt.unlink(missing_ok=True)
