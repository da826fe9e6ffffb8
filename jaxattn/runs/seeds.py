"""W&P's seed baseline: the base config retrained with other seeds, each an ordinary run directory.

:func:`train_seeds` retrains a config with other ``train.seed`` values, every seed ending as an
ordinary run directory that :func:`jaxattn.runs.run.load_run` reads. Two ways, the same result:

* ``vmap``: all seeds as one stack of the one trainer (:func:`jaxattn.training.trainer.train` with
  ``seeds``). Each seed keeps its own initialisation *and* its own batch order, exactly what
  ``jaxattn train`` with that seed does; the members' batches are padded to the longest of them
  and stacked (padding does not change a row's outputs, but it is work).
* ``sequential``: one seed after another through :func:`jaxattn.runs.run.train_run` (its own resume).

A pretrained encoder's seeds (``model.encoder = "bert"``) start, either way, from the folder's
weights (``model.pretrained``) with a fresh head drawn from the seed, as ``jaxattn train`` does.

``auto`` (the default) takes ``vmap`` on an accelerator, where a stack of M small models costs little
more than one, and ``sequential`` on a CPU, where it does not: on 2 cores, one epoch of the synthetic
BiLSTM config took 2.4 s per seed one by one (19 s for 8), 22 s for a stack of 8 sharing batches and
53 s with each seed's own batch order (padding to the longest of 8 batches); for the SST-2 config
13 s per seed one by one against 110 s for a stack of 8 sharing batches.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

import jax
from tqdm.auto import tqdm

from jaxattn.config import Config, ConfigError
from jaxattn.data.prepare import Prepared
from jaxattn.runs.fit import run_metrics
from jaxattn.runs.limits import available_memory, gib, memory_estimate
from jaxattn.runs.pretrained import initial_params as pretrained_params
from jaxattn.runs.pretrained import is_pretrained, load_source
from jaxattn.runs.run import (
    initial_params,
    is_finished_run,
    model_for,
    train_run,
    write_run,
)
from jaxattn.runtime import distributed
from jaxattn.training.objective import AttentionSource
from jaxattn.training.optimizers import make_optimizer
from jaxattn.training.train_state import (
    init_state,
    load_checkpoint,
    member,
    save_checkpoint,
    stack_trees,
)
from jaxattn.training.trainer import train

SEED_MODES = ("auto", "vmap", "sequential")
#: Seed runs one command may ask for: each is a run folder of its own.
MAX_SEEDS = 100_000


# --------------------------------------------------------------------------------------------
# W&P's seed baseline


def resolve_seed_mode(mode: str) -> str:
    """``auto`` -> ``vmap`` on an accelerator, ``sequential`` on a CPU (see the module docstring)."""
    if mode not in SEED_MODES:
        raise ConfigError(f"seed mode {mode!r} is not one of {', '.join(SEED_MODES)}")
    if mode == "auto":
        if distributed.process_count() > 1:
            return "vmap"  # one stack, its members spread over the processes' devices
        return "sequential" if jax.default_backend() == "cpu" else "vmap"
    return mode


def seed_config(cfg: Config, seed: int) -> Config:
    """``cfg`` with ``train.seed = seed``."""
    out = copy.deepcopy(cfg)
    out.train.seed = seed
    return out


def seed_dir(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def train_seeds(
    cfg: Config,
    seeds: Sequence[int],
    prepared: Prepared,
    out_dir: str | Path,
    mode: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Trains ``cfg`` once per seed into ``out_dir/seed_<s>`` (finished seeds are kept).

    Returns the run directories, in the order of ``seeds``.
    """
    mode = resolve_seed_mode(mode)
    check_seed_count(len(seeds))
    if mode != "sequential" and len(seeds) > 1:
        check_stack_memory(cfg, prepared, len(seeds))  # before anything per seed is made
    out_dir = Path(out_dir)
    dirs = [seed_dir(out_dir, s) for s in seeds]
    pending = [s for s, d in zip(seeds, dirs) if not is_finished_run(d)]
    if pending and mode == "sequential":
        for s in tqdm(pending, desc="seeds", disable=not progress):
            train_run(seed_config(cfg, s), seed_dir(out_dir, s), progress=progress, prepared=prepared)
    elif pending:
        _train_seed_stack(cfg, pending, prepared, out_dir, progress)
    return dirs


def check_seed_count(count: int) -> None:
    if count > MAX_SEEDS:
        raise ConfigError(f"--seeds {count}: at most {MAX_SEEDS} seed runs (each writes a run "
                          "folder of its own)", key="seeds")


def check_stack_memory(cfg: Config, prepared: Prepared, members: int) -> None:
    """Refuses a stack of ``members`` models whose parameters (with their gradients and optimizer
    moments) cannot fit in the memory there is, before any of them is built."""
    found = available_memory()
    if found is None:
        return
    available, where = found
    params, _ = memory_estimate(cfg, model_for(cfg, prepared, len(prepared.vocab)), prepared)
    if members * params > available:
        raise ConfigError(
            f"--seeds: a stack of {members} models needs about {gib(members * params)} while "
            f"training, more than the {gib(available)} of {where}; ask for fewer seeds or "
            "train them one by one (seed_mode = sequential)",
            key="seeds",
        )


def _train_seed_stack(
    cfg: Config, seeds: Sequence[int], prepared: Prepared, out_dir: Path, progress: bool
) -> None:
    if cfg.train.attention not in ("learned", "uniform"):
        raise ConfigError("stacked seed training supports train.attention learned or uniform")
    tc = cfg.train
    source = load_source(cfg) if is_pretrained(cfg) else None
    if source is not None:
        # As `jaxattn train` of each seed: the folder's encoder with a fresh head per seed.
        model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
        inits = [pretrained_params(model, seed_config(cfg, s), source.params) for s in seeds]
        embeddings = {"name": "pretrained", "folder": cfg.model.pretrained}
        model_record = {"encoder": cfg.model.encoder, "head": cfg.model.head,
                        "pretrained": cfg.model.pretrained, "max_pieces": cfg.model.max_pieces}
    else:
        model = model_for(cfg, prepared, len(prepared.vocab))
        inits, notes = zip(*(initial_params(seed_config(cfg, s), model, prepared) for s in seeds))
        embeddings = notes[0]
        model_record = {"encoder": cfg.model.encoder, "attention": cfg.model.attention}
    optimizer = make_optimizer(tc, len(prepared.splits["train"]), model, inits[0])
    state = init_state(stack_trees(list(inits)), optimizer)
    ckpt = out_dir / "seeds_checkpoint.msgpack"
    meta = {"config": cfg.to_dict(), "seeds": list(seeds)}
    state = load_checkpoint(ckpt, state, meta) or state
    start = time.perf_counter()
    state = train(model, state.params, prepared.splits, tc, AttentionSource(tc.attention),
                  state=state, on_epoch_end=lambda st: save_checkpoint(ckpt, st, meta),
                  progress=progress, seeds=seeds)
    elapsed = time.perf_counter() - start
    for m, s in enumerate(seeds):
        metrics = run_metrics(state, m, tc, model, prepared, elapsed)
        metrics.update(
            train_examples_per_second=len(prepared.splits["train"]) * len(metrics["epochs"])
            * len(seeds) / max(metrics["train_seconds"], 1e-9),
            embeddings=embeddings,
            attention=tc.attention,
            model=model_record,
            trained_as=f"stack of {len(seeds)} seeds ({', '.join(map(str, seeds))}), vmapped",
        )
        write_run(seed_dir(out_dir, s), seed_config(cfg, s), prepared, member(state.best_params, m),
                  metrics, source)
    ckpt.unlink(missing_ok=True)
