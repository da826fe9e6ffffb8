"""The Jain & Wallace battery on any model: ``jaxattn.analyze`` and ``jaxattn analyze --run``.

Where results go: a report folder holds ``instances.npz`` / ``instances.json`` (what was
analysed), one ``<stage>.npz`` per stage and the report files. The main folder (``RUN/analysis``
for a run) holds the fullest analysis asked for; a request that is narrower than what it holds
(fewer instances, another split, fewer stages) writes beside it, in
``analysis/views/<split>-<n>[-<stages>]``, reusing the fuller results' rows where their keys
match, and never overwrites them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxattn.config import ConfigError
from jaxattn.core.checks import check_model, check_model_outputs
from jaxattn.core.protocol import AttentionModel, Params
from jaxattn.data.batching import make_batch
from jaxattn.data.prepare import Prepared
from jaxattn.data.vocab import Vocab
from jaxattn.explain.erasure import LIMITS
from jaxattn.explain.faithfulness import UNITS as ERASER_UNITS
from jaxattn.models.vocab_features import with_vocabulary_features
from jaxattn.runs.run import load_run
from jaxattn.runtime.compile_cache import enable_compilation_cache
from jaxattn.runtime.files import read_json, write_json
from jaxattn.runtime.lock import run_lock
from jaxattn.studies.buckets import choose_buckets
from jaxattn.studies.jain_wallace.report import STALE_FILE, mark_stale, write_report
from jaxattn.studies.jain_wallace.stages import STAGE_SPECS, AnalysisOptions
from jaxattn.studies.registry import list_stages, providers, register_stage
from jaxattn.studies.runner import run_stage
from jaxattn.studies.self_attention import heads as head_stages
from jaxattn.studies.self_attention import shortcut as _shortcut  # noqa: F401  (registers it)
from jaxattn.studies.stage import Stage, skip_reason
from jaxattn.studies.stage_cache import find_cached, params_digest, row_digests, save_npz, stage_key


def analysis_options(options: dict) -> AnalysisOptions:
    """:class:`AnalysisOptions` from keyword options; unknown names and bad values are refused."""
    known = {f.name for f in dataclasses.fields(AnalysisOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"analyze: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if "buckets" in options:
        options = {**options, "buckets": tuple(options["buckets"])}
    opts = AnalysisOptions(**options)
    if opts.erasure_limit not in LIMITS:
        raise ConfigError(f"analyze: option erasure_limit={opts.erasure_limit!r} is not one of "
                          f"{', '.join(repr(x) for x in LIMITS)}")
    if opts.eraser_unit not in ERASER_UNITS:
        raise ConfigError(f"analyze: option eraser_unit={opts.eraser_unit!r} is not one of "
                          f"{', '.join(repr(x) for x in ERASER_UNITS)}")
    for f in dataclasses.fields(opts):
        value = getattr(opts, f.name)
        if f.name in ("erasure_limit", "eraser_unit") or f.name in head_stages.TEXT_OPTIONS:
            continue
        if f.name in ("seed", "samples", "topk") and value < 0 or (
            f.name not in ("seed", "samples", "topk", "buckets", "adv_learning_rate", "epsilon")
            and value < 1
        ):
            raise ConfigError(f"analyze: option {f.name}={value!r} is out of range")
    head_stages.check_options(opts)
    if not (0 < opts.adv_learning_rate < float("inf")) or not (0 <= opts.epsilon <= 1):
        raise ConfigError("analyze: adv_learning_rate must be finite > 0 and epsilon in [0, 1]")
    return opts


def chosen_stages(only) -> list[str]:
    """The stages ``only`` names (default: all registered but those not run ``by_default``),
    in run order; unknown names are
    refused. Items may be stage names or :class:`~jaxattn.studies.stage.Stage` objects, which
    are registered first (:func:`~jaxattn.studies.registry.register_stage`).

    Which stages a model can run is decided later (:func:`applicable_stages`): a chosen stage that
    does not apply to the model (``self_attn`` without self-attention layers) is skipped. The
    stages whose results a chosen stage reads (its ``needs``) are chosen with it.
    """
    if isinstance(only, (str, Stage)):
        only = [only]
    names = None if only is None else [
        register_stage(s).name if isinstance(s, Stage) else s for s in only]
    every = list_stages()
    wanted = ({s for s in every if STAGE_SPECS[s].by_default} if names is None
              else set(names))
    if not wanted or wanted - set(every):
        raise ConfigError(
            f"analyze --only: unknown or no stage(s) {', '.join(sorted(wanted - set(every)))}; "
            f"choose from {', '.join(every)}"
        )
    while True:
        inputs = {p for s in wanted for p in providers(s) if p in every} - wanted
        if not inputs:
            return [s for s in every if s in wanted]
        wanted |= inputs


def _has_multi_piece_word(word_index: np.ndarray) -> bool:
    """Whether some word of one row's ``word_index`` <int32>[N] has several pieces."""
    words = word_index[word_index >= 0]
    return len(np.unique(words)) < len(words)


def skipped_stages(model: AttentionModel, params: Params, split, indices) -> dict[str, str]:
    """Stage name -> why it cannot run on ``model``, for the registered stages (and the
    always-run ``attention``) that cannot (asked on one instance, padded to its own length: the
    first with a word of several pieces, so that a stage for word pieces sees them, else the
    first)."""
    probe = next((i for i in indices if _has_multi_piece_word(split.word_index[i])), indices[0])
    one = make_batch(split, [probe], buckets=(len(split.tokens[probe]),))
    reasons = {s: skip_reason(STAGE_SPECS[s], model, params, one) for s in ("attention", *list_stages())}
    return {s: why for s, why in reasons.items() if why is not None}


def applicable_stages(model: AttentionModel, params: Params, split, indices) -> list[str]:
    """The registered stages that can run on ``model`` (:func:`skipped_stages`)."""
    skipped = skipped_stages(model, params, split, indices)
    return [s for s in list_stages() if s not in skipped]


def _request(split: str, indices: np.ndarray, digests: np.ndarray, stages, params: str) -> dict:
    return {"split": split, "index": indices.tolist(), "digests": digests.tolist(),
            "stages": sorted(stages), "params": params}


def _covers(new: dict, old: dict) -> bool:
    """Whether the request ``new`` holds everything ``old`` did (same model and split)."""
    if old.get("params") != new["params"]:
        return True  # old results of another model: stale, not fuller
    pairs = set(zip(new["index"], new["digests"]))
    return (old.get("split") == new["split"]
            and set(zip(old["index"], old["digests"])) <= pairs
            and set(old["stages"]) <= set(new["stages"]))


def changed_rows(new: dict, old: dict) -> list[int]:
    """The rows ``old`` analysed (same model and split) whose data is no longer what ``new``
    reads: same row number, another content digest."""
    if old.get("params") != new["params"] or old.get("split") != new["split"]:
        return []
    now = dict(zip(new["index"], new["digests"]))
    return [i for i, d in zip(old.get("index", []), old.get("digests", []))
            if i in now and now[i] != d]


def report_folder(root: Path, request: dict, n_split: int, every=None) -> Path:
    """``root`` unless it holds a fuller valid analysis; then a named folder beside it (named by
    its stages unless they are ``every`` stage the model can run)."""
    path = root / "request.json"
    if not path.exists() or _covers(request, read_json(path)):
        return root
    n = len(request["index"])
    name = f"{request['split']}-{'all' if n == n_split else n}"
    if set(request["stages"]) != set(list_stages() if every is None else every):
        name += "-" + ("-".join(request["stages"]) or "attention")
    return root / "views" / name


def _instances(prepared: Prepared, split: str, indices, digests, setting, params, opts) -> tuple:
    enc = prepared.splits[split]
    examples = prepared.dataset.splits[split]
    t_max = enc.width(indices)
    tokens = np.zeros((len(indices), t_max), np.int32)
    rationale = None if enc.rationales is None else np.zeros((len(indices), t_max), bool)
    for row, i in enumerate(indices):
        tokens[row, : len(enc.tokens[i])] = enc.tokens[i]
        if rationale is not None:
            rationale[row, : len(enc.rationales[i])] = enc.rationales[i]
    word_index = np.full((len(indices), t_max), -1, np.int32)
    for row, i in enumerate(indices):
        word_index[row, : len(enc.word_index[i])] = enc.word_index[i]
    arrays = {"mask": word_index >= 0, "labels": enc.labels[indices],
              "index": np.asarray(indices), "row_digest": digests}
    if rationale is not None:
        arrays["rationale"] = rationale
    words = [list(examples[i].tokens) for i in indices]
    pieces = None
    if not isinstance(prepared.vocab, Vocab):
        # The analyses score pieces; the report also shows each word, the sum of its pieces.
        arrays["word_index"] = word_index
        pieces = [prepared.vocab.piece_names(enc.tokens[i][enc.word_index[i] >= 0])
                  for i in indices]
        if prepared.vocab.joins_pairs and prepared.dataset.is_pair:
            words = [w + list(examples[i].query or ()) for w, i in zip(words, indices)]
    info = {
        "task": prepared.dataset.task,
        "class_names": list(prepared.dataset.label_names),
        "words": words,
        "pieces": pieces,
        "queries": [list(examples[i].query) if examples[i].query else None for i in indices],
        "setting": setting,
        "params": params,
        "report": {"topk": opts.topk, "samples": opts.samples, "seed": opts.seed},
    }
    return arrays, info


def analyze(
    model: AttentionModel,
    params: Params,
    data: Prepared,
    out: str | Path,
    split: str = "test",
    only=None,
    limit: int | None = None,
    setting: dict | None = None,
    progress: bool = True,
    stages=None,
    **options,
) -> Path:
    """Runs the J&W stages of any :class:`~jaxattn.core.protocol.AttentionModel` on ``split`` of
    ``data`` and writes the report under ``out``; returns the path of its ``index.html``.

    Args:
      data: the prepared data set (:func:`jaxattn.prepare_data`), encoded with the vocabulary the
        model was trained with.
      only: stages to compute (names of :func:`jaxattn.list_stages`: ``grad, loo, ig, perm,
        adv, self_attn, summaries, norm, erasure, eraser, plausibility`` and any registered
        since, or :class:`~jaxattn.studies.stage.Stage` objects of your own; default all; the
        stages a chosen one reads run with it). Results
        of other stages already cached for the same instances, model and options are reported
        too. ``self_attn`` (the per-layer self-attention each token receives) runs only for a
        model whose ``self_attention`` gives layers, and is skipped for any other.
      limit: analyse only the first ``limit`` instances of the split.
      setting: what the report says about the model and data (dataset, encoder, ...).
      stages: the same as ``only`` (either may be given, not both).
      options: fields of :class:`AnalysisOptions` (batch sizes, P, K, steps, seed, ...).
    """
    enable_compilation_cache()
    model = check_model(model)
    opts = analysis_options(options)
    if only is not None and stages is not None:
        raise ConfigError("analyze: give the stages as only= or stages=, not both")
    stages = chosen_stages(stages if stages is not None else only)
    if split not in data.splits:
        raise ConfigError(f"analyze --split {split}: the data has splits {', '.join(data.splits)}")
    encoded = data.splits[split]
    if limit is not None and limit <= 0:
        raise ConfigError(f"analyze --limit {limit}: nothing to analyse")
    n = len(encoded) if limit is None else min(limit, len(encoded))
    indices = np.arange(n)
    check_model_outputs(model, params, make_batch(encoded, indices[:8]),
                        num_classes=len(data.dataset.label_names))
    widths = [len(encoded.tokens[i]) for i in indices]
    opts = dataclasses.replace(opts, buckets=choose_buckets(widths, opts.buckets, opts.max_buckets))
    digests = row_digests(encoded, indices)
    root = Path(out)
    with run_lock(root, "jaxattn analyze"):
        pdigest = params_digest(params)
        setting = {"dataset": data.dataset.name, "task": data.dataset.task, "split": split,
                   **(setting or {})}
        setting["split"] = split
        # Every stage file under the root can serve rows (the main folder's first).
        def places(name: str) -> list[Path]:
            return [root / f"{name}.npz", *sorted(root.glob(f"views/*/{name}.npz"))]

        skipped = skipped_stages(model, params, encoded, indices)
        runnable = [s for s in list_stages() if s not in skipped]

        def meta(name: str) -> dict:
            # A stage reading other stages' results depends on their keys too.
            inputs = {p: meta(p)["key"] for p in providers(name)
                      if p == "attention" or p in runnable}
            key = stage_key(STAGE_SPECS[name], opts, pdigest, split, inputs)
            return {"split": split, "params": pdigest, "digests": digests, "key": key}

        if progress:
            for name in stages:
                if name in skipped:
                    tqdm.write(f"{name}: skipped, {skipped[name]}")
        length = encoded.width(indices)
        found = {
            name: find_cached(STAGE_SPECS[name], meta(name)["key"], places(name), indices,
                              digests, length)
            for name in runnable
        }
        # The report covers the stages asked for plus any cached for the same rows and options.
        present = [s for s in runnable if s in stages or found[s] is not None]
        request = _request(split, indices, digests, present, pdigest)
        folder = report_folder(root, request, len(encoded), runnable)
        # The stages compute with the input projection gathered from a per-word table (the
        # results equal the model's own to float tolerance); the cache keys keep the model's.
        fast_model, fast_params = with_vocabulary_features(model, params, len(data.vocab))
        results: dict[str, dict] = {}
        for name in ("attention", *present):
            known = {} if name == "attention" else {"found": found[name]}
            given = {k: results[p][k] for p in providers(name) if p in results
                     for k in STAGE_SPECS[name].needs if k in results[p]}
            results[name] = run_stage(
                STAGE_SPECS[name], fast_model, fast_params, encoded, indices, opts,
                folder / f"{name}.npz", meta(name), places(name), progress=progress, given=given,
                **known)[0]
        arrays, info = _instances(data, split, indices, digests, setting, pdigest, opts)
        save_npz(folder / "instances.npz", arrays, {"split": split})
        write_json(folder / "instances.json", info)
        write_json(folder / "request.json", request)
        if folder == root:
            (root / STALE_FILE).unlink(missing_ok=True)  # rebuilt from the current rows
        report = write_report(folder, progress)
        if folder != root and (root / "request.json").exists():
            changed = changed_rows(request, read_json(root / "request.json"))
            if changed:
                mark_stale(root, (
                    f"{len(changed)} of the {split} rows this report analysed (row "
                    f"{changed[0]} first) no longer hold the data the model now reads; the "
                    f"current analysis is in {folder.relative_to(root).as_posix()}/index.html"))
        return report


def run_setting(run, split: str) -> dict:
    """What the report says about a trained run (the published setting is compared with it)."""
    embeddings = run.metrics.get("embeddings", {})
    return {
        "run": str(run.path),
        "dataset": run.data_info.get("name", run.config.data.name),
        "task": run.data_info.get("task"),
        "split": split,
        "encoder": run.config.model.encoder,
        "attention": run.config.model.attention,
        "attention_source": run.config.train.attention,
        "embeddings": embeddings.get("name", run.config.data.embeddings)
        if isinstance(embeddings, dict)
        else embeddings,
        "selection": run.metrics.get("selection", run.config.train.selection),
        "test_scores": run.metrics.get("test"),
        "wp_report": "../wp/index.html" if (run.path / "wp" / "index.html").exists() else None,
    }


def analyze_run(
    run_dir: str | Path,
    split: str = "test",
    only=None,
    limit: int | None = None,
    progress: bool = True,
    **options,
) -> Path:
    """:func:`analyze` of a run directory written by ``jaxattn train``, into ``RUN/analysis``.

    Holds the run directory's lock for the whole analysis.
    """

    analysis_options(options)
    chosen_stages(only)
    with run_lock(run_dir, "jaxattn analyze"):
        run = load_run(run_dir)
        return analyze(run.model, run.params, run.prepare_data(), run.path / "analysis",
                       split=split, only=only, limit=limit, setting=run_setting(run, split),
                       progress=progress, **options)
