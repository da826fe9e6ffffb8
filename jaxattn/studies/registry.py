"""The one registry of analysis stages: what ``jaxattn analyze --only`` offers, its help text,
the report's sections and any verdict rows the stages declare all come from it.

A stage defined outside the package is a :class:`~jaxattn.studies.stage.Stage` passed to
:func:`register_stage` (or straight to ``jaxattn.analyze(..., stages=[...])``, which registers
it): it then runs, caches, appears in the report and, when it declares ``verdict``, in the
verdict like a built-in stage. A stage's randomness comes from its own stream of the analysis
seed, derived from its name (:func:`random_key`), so adding one renumbers nothing.
"""

from __future__ import annotations

import zlib

import jax

from jaxattn.core.errors import ConfigError
from jaxattn.studies.stage import Stage

#: Every registered stage by name, in run order (``attention`` first: every report needs it).
REGISTRY: dict[str, Stage] = {}
#: Stages that always run and cannot be chosen.
ALWAYS = ("attention",)


def register_stage(stage: Stage) -> Stage:
    """Adds ``stage`` (returned, so this works as a decorator-style call). Registering the same
    stage again is a no-op; another stage under a registered name is refused."""
    if not isinstance(stage, Stage):
        raise TypeError(f"register_stage takes a jaxattn Stage, not {type(stage).__name__}")
    if not stage.name.isidentifier():
        raise ConfigError(f"stage name {stage.name!r}: use letters, digits and _ (a file stem)")
    known = REGISTRY.get(stage.name)
    if known is not None and known != stage:
        raise ConfigError(f"a different stage named {stage.name!r} is already registered")
    unknown = [n for n in stage.needs if n not in importance_keys()]
    if unknown:
        raise ConfigError(f"stage {stage.name!r} needs importances no registered stage yields: "
                          f"{', '.join(unknown)}")
    REGISTRY[stage.name] = stage
    return stage


def list_stages() -> list[str]:
    """The stages ``analyze`` can be asked for, in run order (``attention`` always runs)."""
    return [name for name in REGISTRY if name not in ALWAYS]


def get_stage(name: str) -> Stage:
    if name not in REGISTRY:
        raise ConfigError(f"unknown stage {name!r}; known: {', '.join(list_stages())}")
    return REGISTRY[name]


def importance_keys() -> set[str]:
    return {key for stage in REGISTRY.values() for key, _ in stage.importances}


def stream(stage: Stage) -> int:
    """The stage's stream of the seed: its declared ``stream``, else a hash of its name."""
    if stage.stream is not None:
        return stage.stream
    return zlib.crc32(stage.name.encode()) & 0x7FFFFFFF


def random_key(seed: int, name: str) -> jax.Array:
    """The PRNG key of stage ``name`` under analysis seed ``seed``."""
    return jax.random.fold_in(jax.random.key(seed), stream(get_stage(name)))


def providers(name: str) -> list[str]:
    """The stages whose importances stage ``name`` ``needs``, in registry order."""
    wanted = set(REGISTRY[name].needs)
    return [other for other, stage in REGISTRY.items()
            if wanted & {key for key, _ in stage.importances}]


def importance_labels() -> dict[str, str]:
    """Importance key -> label, in display order, from every registered stage."""
    return {key: label for stage in REGISTRY.values() for key, label in stage.importances}
