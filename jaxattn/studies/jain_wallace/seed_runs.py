"""N seeds of one J&W model: the base run plus N - 1 retrained seeds, each an ordinary run.

The base run (``train.seed = s``) keeps its own directory; seeds ``s + 1 .. s + N - 1`` go to
``BASE/seeds/seed_<k>`` through :func:`jaxattn.runs.seeds.train_seeds`, which trains them as one
vmapped stack of the one trainer (``mode="vmap"``) or one after another (``"sequential"``;
``"auto"`` picks by device). Either way each seed equals ``jaxattn train`` with that seed.
"""

from __future__ import annotations

from pathlib import Path

from jaxattn.config import Config, ConfigError
from jaxattn.runs.run import load_run, train_run
from jaxattn.runs.seeds import train_seeds


def extra_seeds(cfg: Config, n_seeds: int) -> list[int]:
    """The seeds after the base's: ``train.seed + 1 .. train.seed + n_seeds - 1``."""
    if n_seeds < 1:
        raise ConfigError(f"--seeds {n_seeds}: needs at least 1 (the base run)")
    return [cfg.train.seed + k for k in range(1, n_seeds)]


def train_seed_runs(
    cfg: Config, base_dir: str | Path, n_seeds: int, mode: str = "auto", progress: bool = True
) -> list[Path]:
    """Trains (or finds finished) ``n_seeds`` runs of ``cfg``; returns their directories, the
    base first. Finished runs are kept, so a rerun trains only what is missing."""
    base_dir = Path(base_dir)
    seeds = extra_seeds(cfg, n_seeds)
    train_run(cfg, base_dir, progress=progress)
    if not seeds:
        return [base_dir]
    # The base run's own vocabulary, so every seed sees exactly the same encoded data.
    prepared = load_run(base_dir).prepare_data()
    dirs = train_seeds(cfg, seeds, prepared, base_dir / "seeds", mode, progress)
    return [base_dir, *dirs]

