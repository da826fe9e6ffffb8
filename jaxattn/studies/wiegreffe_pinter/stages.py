"""The four stages of the Wiegreffe & Pinter suite (:mod:`jaxattn.studies.wiegreffe_pinter.suite`
says what each computes): retraining with uniform attention and with other seeds, the
model-consistent adversaries, and the diagnostic MLP with each attention imposed. Each is kept
in ``wp/<stage>.json`` (:func:`~jaxattn.studies.wiegreffe_pinter.context.kept_stage`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxattn.config import ConfigError
from jaxattn.core.protocol import AttentionModel
from jaxattn.data.prepare import Prepared
from jaxattn.models.config import ModelConfig
from jaxattn.models.encoders import EncoderSettings
from jaxattn.models.model import build_model
from jaxattn.runs.fit import read_params
from jaxattn.runs.run import train_run
from jaxattn.runs.seeds import (
    check_seed_count,
    check_stack_memory,
    resolve_seed_mode,
    seed_dir,
    train_seeds,
)
from jaxattn.runtime.files import read_json
from jaxattn.studies.comparison import compare_members
from jaxattn.studies.wiegreffe_pinter.adversarial_training import (
    summarise_adversaries,
    train_adversaries,
    train_model_adversaries,
)
from jaxattn.studies.wiegreffe_pinter.context import (
    Suite,
    WPOptions,
    kept_stage,
    relative_to,
    test_scores,
)
from jaxattn.studies.wiegreffe_pinter.report import DIAGNOSTIC_KINDS, adversary_choice
from jaxattn.training.objective import AttentionSource

FALLBACK_CONSISTENCY_TVD = 0.05


def uniform_stage(suite: Suite) -> dict:
    def compute():
        out = suite.runs / "uniform"
        if suite.own:
            metrics = suite.train_variant(out, AttentionSource("uniform"))
        else:
            metrics = train_run(suite.config(train={"attention": "uniform"}), out,
                                suite.progress, suite.prepared)
        return {**test_scores(metrics), "best_epoch": metrics["best_epoch"],
                "run": relative_to(out, suite.out)}

    return kept_stage(suite, "uniform", {}, compute)


def seeds_stage(suite: Suite, n_seeds: int) -> dict:
    if n_seeds < 1:
        raise ConfigError("the seeds stage needs at least one extra seed (--seeds N, N >= 1)")
    base_seed = suite.train_config.seed
    # A model of your own trains its seeds one by one (a stack needs a config's model).
    mode = "sequential" if suite.own else resolve_seed_mode(suite.options.seed_mode)
    check_seed_count(n_seeds)
    if mode != "sequential":
        check_stack_memory(suite.base.config, suite.prepared, n_seeds)
    seeds = [base_seed + k for k in range(1, n_seeds + 1)]

    def compute():
        tc = suite.train_config
        if suite.own:
            dirs = [seed_dir(suite.runs / "seeds", s) for s in seeds]
            for s, d in zip(seeds, dirs):
                suite.train_variant(d, seed=s)
        else:
            dirs = train_seeds(suite.base.config, seeds, suite.prepared, suite.runs / "seeds",
                               mode, suite.progress)
        params = suite.stacked_params(dirs)
        comp = compare_members(suite.base.model, suite.base.params, params,
                               suite.prepared.splits["test"], tc.eval_batch_size, tc.buckets)
        comp.save(suite.out / "seeds.npz")
        # The adversaries are held to the seeds' dev TVD (see choose_adversary).
        dev = compare_members(suite.base.model, suite.base.params, params,
                              suite.prepared.splits["dev"], tc.eval_batch_size, tc.buckets)
        jsd_inst, tvd_inst = np.median(comp.jsd, axis=0), comp.tvd.mean(axis=0)
        per_seed = []
        for s, d, j, t in zip(seeds, dirs, comp.jsd, comp.tvd):
            metrics = read_json(d / "metrics.json")
            per_seed.append({"seed": s, **test_scores(metrics), "jsd_mean": float(j.mean()),
                             "jsd_median": float(np.median(j)), "tvd_mean": float(t.mean()),
                             "run": relative_to(d, suite.out)})
        return {
            "n": n_seeds,
            "seeds": seeds,
            "mode": mode,
            "f1": [r.get("f1") for r in per_seed],
            "jsd_median": float(np.median(jsd_inst)),
            "jsd_mean": float(jsd_inst.mean()),
            "tvd_mean": float(tvd_inst.mean()),
            "tvd_median": float(np.median(tvd_inst)),
            "dev_tvd_mean": float(dev.tvd.mean()),
            "dev_jsd_median": float(np.median(np.median(dev.jsd, axis=0))),
            "per_seed": per_seed,
        }

    return kept_stage(suite, "seeds", {"seeds": seeds, "splits": ["test", "dev"]}, compute)


def consistency_threshold(options: WPOptions, seeds: dict | None) -> tuple[float, str]:
    """The largest mean dev TVD of a model-consistent adversary, and where it comes from (a
    phrase the report's sentence reads)."""
    if options.consistency_tvd is not None:
        return options.consistency_tvd, "set by the consistency_tvd option"
    if seeds and "dev_tvd_mean" in seeds:
        return seeds["dev_tvd_mean"], "the retrained seeds' mean dev TVD to the base model"
    return FALLBACK_CONSISTENCY_TVD, "a fixed fallback, as the seeds stage has not run"


def choose_adversary(
    sweep: Sequence[dict], options: WPOptions, threshold: float
) -> tuple[dict, str]:
    """The sweep row the diagnostic imposes (see the module docstring) and the rule that chose
    it: ``diagnostic_lambda`` (the option), ``most_different_consistent`` (the largest dev JSD
    among the rows with mean dev TVD <= ``threshold``) or ``closest`` (none is; the smallest
    dev TVD)."""
    if options.diagnostic_lambda is not None:
        for row in sweep:
            if np.isclose(row["lambda"], options.diagnostic_lambda):
                return row, "diagnostic_lambda"
        raise ConfigError(f"diagnostic_lambda={options.diagnostic_lambda} is not in the sweep")
    consistent = [r for r in sweep if r["dev_tvd"] <= threshold]
    if consistent:
        return max(consistent, key=lambda r: r["dev_jsd"]), "most_different_consistent"
    return min(sweep, key=lambda r: r["dev_tvd"]), "closest"


def adversary_stage(suite: Suite, lambdas: Sequence[float]) -> dict:
    lambdas = [float(x) for x in lambdas]
    if not lambdas:
        raise ConfigError("the adversary stage needs at least one lambda")
    adv = suite.options.adversary

    def compute():
        tc = suite.train_config
        if suite.own:
            dirs = train_model_adversaries(suite.base.model, suite.base.params, tc, lambdas,
                                           suite.prepared, suite.runs / "adversary", adv,
                                           suite.progress, str(suite.base.path))
        else:
            dirs = train_adversaries(suite.base, lambdas, suite.prepared,
                                     suite.runs / "adversary", adv, suite.progress)
        test = suite.prepared.splits["test"]
        comp = compare_members(suite.base.model, suite.base.params, suite.stacked_params(dirs),
                               test, tc.eval_batch_size, tc.buckets, adv.kl_eps)
        comp.save(suite.out / "adversary.npz")
        rows = summarise_adversaries(suite.base.model, comp, test.labels, lambdas, adv)
        sweep = []
        for lam, d, row in zip(lambdas, dirs, rows):
            metrics = read_json(d / "metrics.json")
            dev = metrics["adversary"]["dev"]
            sweep.append({"lambda": lam, "tvd": row["tvd"], "jsd": row["jsd"], "kl": row["kl"],
                          "f1": row.get("f1"), "accuracy": row["accuracy"], "auc": row.get("auc"),
                          "dev_tvd": dev["tvd"], "dev_jsd": dev["jsd"],
                          "best_epoch": metrics["best_epoch"], "run": relative_to(d, suite.out)})
        return {"sweep": sweep, "aggregate": "sum" if adv.summed else "mean"}

    return kept_stage(suite, "adversary", {"lambdas": lambdas, "options": dataclasses.asdict(adv)},
                  compute)


def diagnostic_stage(suite: Suite, adversary: dict, seeds: dict | None) -> dict:
    threshold, origin = consistency_threshold(suite.options, seeds)
    chosen, reason = choose_adversary(adversary["sweep"], suite.options, threshold)
    adversary_run = (suite.out / chosen["run"]).resolve()
    lam = chosen["lambda"]
    sources = {
        "learned": ("learned", "", "its own"),
        "uniform": ("uniform", "", "uniform 1/len"),
        "imposed": ("imposed", str(suite.base.path.resolve()), "the base model's"),
        "adversary": ("imposed", str(adversary_run), f"the adversary's (lambda {lam:g})"),
    }

    def compute():
        result = {}
        for kind in tqdm(DIAGNOSTIC_KINDS, desc="diagnostic MLP", disable=not suite.progress):
            mode, imposed, text = sources[kind]
            name = kind if kind != "adversary" else f"adversary_lambda_{lam:g}"
            out = suite.runs / "diagnostic" / name
            if suite.own:
                metrics = _own_diagnostic(suite, kind, adversary_run, out)
            else:
                cfg = suite.config(model={"encoder": "average"},
                                   train={"attention": mode, "imposed_run": imposed})
                metrics = train_run(cfg, out, suite.progress, suite.prepared)
            result[kind] = {**test_scores(metrics), "attention": text, "run": relative_to(out, suite.out)}
        result["adversary"].update(
            {"lambda": lam, "rule": reason, "threshold": threshold, "threshold_source": origin,
             "dev_tvd": chosen["dev_tvd"], "dev_jsd": chosen["dev_jsd"]})
        result["adversary"]["chosen_by"] = adversary_choice(result["adversary"])
        return result

    params = {"adversary_run": str(adversary_run)}
    if suite.own:
        params["mlp"] = {"embed_dim": suite.base.diagnostic.embed_dim,
                         "hidden_size": suite.base.diagnostic.hidden_size}
    return kept_stage(suite, "diagnostic", params, compute)


def diagnostic_model(data: Prepared, config: ModelConfig | None = None) -> AttentionModel:
    """W&P's diagnostic MLP for ``data``: the non-contextual ``average`` encoder (a projection of
    each embedding on its own) with additive attention and a linear decoder, sized by ``config``
    (``embed_dim``, ``hidden_size``; default :class:`ModelConfig`'s)."""
    config = config or ModelConfig()
    info = data.info()
    return build_model(vocab_size=len(data.vocab), task=info["task"],
                       num_classes=len(info["label_names"]), encoder="average",
                       attention="additive", embed_dim=config.embed_dim,
                       **dataclasses.asdict(EncoderSettings.of(config)))


def _own_diagnostic(suite: Suite, kind: str, adversary_run: Path, out: Path) -> dict:
    """One diagnostic MLP beside a model of the caller's own: its attention is the MLP's own,
    uniform, the base model's, or the adversary's (read from ``adversary_run``)."""
    mlp = diagnostic_model(suite.prepared, suite.base.diagnostic)
    if kind in ("learned", "uniform"):
        return suite.train_variant(out, AttentionSource(kind), model=mlp)
    params = suite.base.params if kind == "imposed" else read_params(
        adversary_run / "params.msgpack", suite.base.params)
    return suite.train_variant(out, AttentionSource("imposed", suite.base.model), params,
                               model=mlp)
