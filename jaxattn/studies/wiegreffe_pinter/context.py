"""What every stage of the Wiegreffe & Pinter suite reads (:class:`Suite`: the base run or
model, its data, the output folder, the options) and how a stage's result is kept
(:func:`kept_stage`: ``wp/<stage>.json``, read back when its parameters are the same).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from jaxattn.config import Config, ConfigError
from jaxattn.core.protocol import AttentionModel, Params
from jaxattn.data.dataset import Dataset
from jaxattn.data.prepare import Prepared, prepare
from jaxattn.models.config import ModelConfig
from jaxattn.runs.fit import read_params, train_model
from jaxattn.runs.run import Run
from jaxattn.runs.seeds import SEED_MODES
from jaxattn.runtime.files import read_json, write_json
from jaxattn.studies.comparison import load_stacked_params
from jaxattn.studies.wiegreffe_pinter.adversarial_training import AdversaryOptions
from jaxattn.studies.wiegreffe_pinter.provenance import record_base
from jaxattn.training.config import TrainConfig
from jaxattn.training.objective import LEARNED, AttentionSource
from jaxattn.training.train_state import stack_trees


@dataclasses.dataclass(frozen=True)
class WPOptions:
    """Options of the suite beyond the stages, seeds and lambdas.

    Attributes:
      seed_mode: ``auto``, ``vmap`` (all seeds as one stack) or ``sequential`` (see
        :mod:`jaxattn.runs.seeds`); it changes how long the seeds take, not what they are.
      consistency_tvd: the largest mean dev TVD an adversary may have to be used by the diagnostic
        (None: the seeds' mean dev TVD, or ``FALLBACK_CONSISTENCY_TVD`` without seeds).
      diagnostic_lambda: use this lambda's adversary in the diagnostic instead.
      adversary: how adversaries are trained and scored (the published quirks live there).
    """

    seed_mode: str = "auto"
    consistency_tvd: float | None = None
    diagnostic_lambda: float | None = None
    adversary: AdversaryOptions = AdversaryOptions()

    @classmethod
    def from_kwargs(cls, **options) -> WPOptions:
        """Flat keyword options: this class's fields, :class:`AdversaryOptions`' fields, and
        ``test_selection=True`` for the adversary's published test-set selection."""
        own = {f.name for f in dataclasses.fields(cls)} - {"adversary"}
        adv = {f.name for f in dataclasses.fields(AdversaryOptions)}
        unknown = set(options) - own - adv - {"test_selection"}
        if unknown:
            raise ConfigError(f"unknown W&P option(s): {', '.join(sorted(unknown))}")
        adv_opts = {k: v for k, v in options.items() if k in adv}
        if options.get("test_selection"):
            adv_opts["selection"] = "test"
        out = cls(**{k: v for k, v in options.items() if k in own},
                  adversary=AdversaryOptions(**adv_opts))
        if out.seed_mode not in SEED_MODES:
            raise ConfigError(f"seed_mode {out.seed_mode!r} is not one of {', '.join(SEED_MODES)}")
        return out


@dataclasses.dataclass
class OwnBase:
    """A base model brought through the Python API rather than a run directory: any
    :class:`~jaxattn.core.protocol.AttentionModel` with the pooling seam, its parameters, the
    training settings its variants are trained with, and what the report calls it."""

    model: AttentionModel
    params: Params
    train: TrainConfig
    metrics: dict
    data_info: dict
    path: Path  # the folder the report and the verdict name as the model's
    names: dict  # {"encoder": ..., "attention": ...} for the report
    diagnostic: ModelConfig  # the diagnostic MLP's sizes


@dataclasses.dataclass
class Suite:
    """What every stage reads: the base run (or model), its data, the output folder and the
    options."""

    base: Run | OwnBase
    out: Path
    options: WPOptions
    progress: bool
    dataset: Dataset | None
    _prepared: Prepared | None = None
    base_key: dict | None = None  # what every result here depends on (see provenance)

    @property
    def own(self) -> bool:
        """Whether the base is a model of the caller's own (variants train with
        :func:`jaxattn.runs.fit.train_model`, not from a config)."""
        return isinstance(self.base, OwnBase)

    @property
    def train_config(self) -> TrainConfig:
        return self.base.train if self.own else self.base.config.train

    def stacked_params(self, dirs: Sequence[Path]) -> Params:
        """The selected parameters of the sub-runs ``dirs`` (of the base's architecture)."""
        if self.own:
            return stack_trees([read_params(d / "params.msgpack", self.base.params)
                                for d in dirs])
        return load_stacked_params(dirs)

    def train_variant(self, out: Path, source: AttentionSource = LEARNED,
                      source_params: Params | None = None, model: AttentionModel | None = None,
                      **train) -> dict:
        """Trains a variant of a model of the caller's own (``model``: another one, e.g. the
        diagnostic MLP) with ``train`` changes to its training settings; its metrics."""
        tc = dataclasses.replace(self.base.train, **train)
        return train_model(model or self.base.model, self.prepared, tc, out,
                           progress=self.progress, source=source,
                           source_params=source_params)[1]

    @property
    def prepared(self) -> Prepared:
        if self._prepared is None:  # only stages that compute need the data
            self._prepared = prepare(self.base.config.data, vocab=self.base.vocab, dataset=self.dataset)
        return self._prepared

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def config(self, **changes: dict) -> Config:
        """The base config with ``section={key: value}`` changes."""
        cfg = copy.deepcopy(self.base.config)
        for section, values in changes.items():
            for key, value in values.items():
                setattr(getattr(cfg, section), key, value)
        return cfg

    def say(self, text: str) -> None:
        if self.progress:
            tqdm.write(f"[wp] {text}")


def normalised(obj):
    """``obj`` as JSON reads it back (tuples become lists), so that stored and asked
    parameters compare equal."""
    return json.loads(json.dumps(obj))


def kept_stage(suite: Suite, name: str, params: dict, compute: Callable[[], dict]) -> dict:
    """Runs ``compute`` unless ``wp/<name>.json`` holds a result for the same ``params``."""
    path = suite.out / f"{name}.json"
    params = normalised(params)
    if path.exists():
        done = read_json(path)
        if done.get("params") == params:
            suite.say(f"{name}: done already ({path})")
            return done
    record_base(suite.out, suite.base_key)  # before the first result it vouches for
    suite.say(f"{name}: running")
    start = time.perf_counter()
    result = compute()
    result.update(params=params, seconds=time.perf_counter() - start)
    write_json(path, result)
    suite.say(f"{name}: finished in {result['seconds']:.1f}s")
    return result


def test_scores(metrics: dict) -> dict:
    """The test F1, accuracy and AUC of a run's ``metrics.json``."""
    test = metrics["test"]
    return {k: test[k] for k in ("f1", "accuracy", "auc") if k in test}


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` where it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
