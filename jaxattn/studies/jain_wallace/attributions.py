"""Token attributions in and out, as ERASER-style JSON lines, and scoring them on a trained run.

One JSON object per line, one line per instance::

    {"id": 17, "split": "test", "tokens": ["a", "fine", "film"],
     "scores": {"attention": [0.2, 0.5, 0.3], "lime": [0.0, 0.9, -0.1]}}

``id`` is the instance's row in the split of the run's data set (``split``, default ``test``),
``tokens`` its words (checked against the run's data), ``scores`` one number per token for every
method (the same methods on every line; high = important). :func:`export_attributions` writes an
analysis folder's importances in this format; :func:`score_run` reads such a file for a trained
run and writes the faithfulness (ERASER) and plausibility tables of its methods, with the random
floor and ferret's ``taucorr_loo`` against this model's leave-one-out.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from jaxattn.core.errors import JaxattnError, read_text
from jaxattn.report.tables import markdown_table
from jaxattn.runs.run import load_run
from jaxattn.runtime.files import strict_json_value, write_atomic, write_json
from jaxattn.runtime.lock import run_lock
from jaxattn.studies.jain_wallace.analyze import _instances, analysis_options, run_setting
from jaxattn.studies.jain_wallace.report import load_data
from jaxattn.studies.jain_wallace.stages import STAGE_SPECS
from jaxattn.studies.jain_wallace.summary import AnalysisData
from jaxattn.studies.runner import compute_stage
from jaxattn.studies.stage_cache import params_digest, row_digests

PREFIX = "file:"  # keeps a file's method names apart from this model's own importances


class AttributionsError(JaxattnError):
    """A malformed attributions file (the message names file:line)."""


def export_attributions(folder: str | Path, path: str | Path) -> int:
    """Writes every importance of the analysis folder ``folder`` to ``path``; returns the count."""

    data = load_data(Path(folder))
    imps = data.importances()
    split = data.setting.get("split", "test")
    lines = []
    for row in range(len(data.labels)):
        scores = {key: [float(v) for v in data.real(values, row)] for key, values in imps.items()}
        record = {"id": int(data.index[row]), "split": split, "tokens": data.tokens[row],
                  "scores": scores}
        if data.word_index is not None:  # pieces: also per word, the sum of its pieces
            record["words"] = data.words[row]
            record["word_scores"] = {key: [float(v) for v in data.word_row(values, row)]
                                     for key, values in imps.items()}
        lines.append(json.dumps(record) + "\n")
    write_atomic(path, "".join(lines))
    return len(lines)


SPLIT_NAMES = ("train", "dev", "test")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _short(value) -> str:
    """``repr(value)`` cut to 40 characters (a 401-digit number is not echoed whole)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else (
        f"a {len(str(abs(value)))}-digit number")
    return text if len(text) <= 40 else text[:37] + "..."


def _float32_number(v) -> bool:
    """A JSON number the scores can hold: finite once stored in float32 (the analyses' type)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, int):
        return abs(v) <= _FLOAT32_MAX  # compared as integers: no float conversion overflows
    return math.isfinite(v) and abs(v) <= _FLOAT32_MAX


def _fail(path: Path, line: int, why: str):
    raise AttributionsError(f"{path}:{line}: {why}")


@dataclasses.dataclass
class Attributions:
    """An attributions file as read: per instance its ``id``, ``tokens`` and file ``line``, and
    ``scores`` {method: [<float64>[n_i]]} in the same order."""

    split: str
    ids: list[int]
    tokens: list[list[str]]
    lines: list[int]
    scores: dict[str, list[np.ndarray]]


def read_attributions(path: str | Path) -> Attributions:
    """The attributions file ``path``.

    Every problem is an :class:`AttributionsError` naming ``path:line``.
    """
    path = Path(path)
    text = read_text(path, error=AttributionsError, what="attributions file")
    split, ids, tokens, lines, scores, seen = None, [], [], [], {}, {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            _fail(path, number, f"not JSON ({err.msg})")
        except ValueError:  # an integer longer than Python converts (4300 digits)
            _fail(path, number, "not JSON that can be read: a number has too many digits")
        if not isinstance(record, dict) or not {"id", "tokens", "scores"} <= set(record):
            _fail(path, number, 'expected an object with "id", "tokens" and "scores"')
        ident, words, methods = record["id"], record["tokens"], record["scores"]
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < 0:
            _fail(path, number, f'"id" must be a row number >= 0, got {_short(ident)}')
        if ident in seen:
            _fail(path, number, f"id {_short(ident)} already on line {seen[ident]}")
        if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
            _fail(path, number, '"tokens" must be a non-empty list of strings')
        line_split = record.get("split", "test")
        if line_split not in SPLIT_NAMES:  # compared as a value: a list or object is not hashed
            _fail(path, number, f'"split" must be one of {", ".join(SPLIT_NAMES)}, got '
                                f"{_short(line_split)}")
        if split is not None and line_split != split:
            _fail(path, number, f'split {line_split!r} differs from the first line\'s {split!r}')
        if not isinstance(methods, dict) or not methods:
            _fail(path, number, '"scores" must map method names to lists of numbers')
        if scores and set(methods) != set(scores):
            _fail(path, number, f"methods {_short(sorted(methods))} differ from the first "
                                f"line's {_short(sorted(scores))}")
        for name, values in methods.items():
            if not isinstance(values, list) or len(values) != len(words):
                _fail(path, number, f"scores of {_short(name)}: expected {len(words)} numbers, one per "
                                    "token")
            bad = [v for v in values if not _float32_number(v)]
            if bad:
                _fail(path, number, f"scores of {_short(name)}: every score must be a finite number "
                                    f"within float32's range, got {_short(bad[0])}")
            scores.setdefault(name, []).append(np.asarray(values, np.float64))
        split, seen[ident] = line_split, number
        ids.append(ident)
        tokens.append(words)
        lines.append(number)
    if not ids:
        raise AttributionsError(f"{path}: no attributions (an empty file)")
    return Attributions(split, ids, tokens, lines, scores)


def _check_tokens(path: Path, prepared, found: Attributions) -> None:
    """Each line's id must be a row of the split holding the same words."""
    split = found.split
    if split not in prepared.splits:
        raise AttributionsError(f"{path}: the run's data has no split {split!r}")
    examples = prepared.dataset.splits[split]
    for number, ident, words in zip(found.lines, found.ids, found.tokens):
        if ident >= len(examples):
            _fail(path, number, f"id {_short(ident)} is beyond the {len(examples)} rows of {split}")
        if list(examples[ident].tokens) != words:
            _fail(path, number, f"tokens differ from row {ident} of the run's {split} split")


def score_attributions(model, params, prepared, path, out, setting=None, progress=True) -> Path:
    """Faithfulness and plausibility of the attributions in ``path`` for ``model``; writes
    ``summary.json`` and ``tables.md`` into ``out`` and returns the ``tables.md`` path."""

    path, out = Path(path), Path(out)
    found = read_attributions(path)
    check_score_folder(out)
    _check_tokens(path, prepared, found)
    split, ids, scores = found.split, found.ids, found.scores
    encoded = prepared.splits[split]
    indices = np.asarray(ids)
    opts = analysis_options({})
    digests = row_digests(encoded, indices)
    arrays, info = _instances(prepared, split, indices, digests, setting or {}, "", opts)
    mask = arrays["mask"]
    given = {}
    for name, rows in scores.items():
        values = np.zeros(mask.shape, np.float32)
        for r, v in enumerate(rows):
            values[r, mask[r]] = v  # the words are the real tokens, in order
        given[PREFIX + name] = values
    stages, metas = {"attributions": given}, {}  # the file's scores as importances
    wanted = ["attention", "loo", "eraser"] + (["plausibility"] if "rationale" in arrays else [])
    for name in wanted:
        spec = STAGE_SPECS[name]
        spec = spec if name not in ("eraser", "plausibility") else _reading(spec, given)
        stages[name], metas[name] = compute_stage(
            spec, model, params, encoded, indices, opts, progress,
            given if spec.needs else None)
    data = AnalysisData(
        mask=mask, labels=arrays["labels"], index=indices, class_names=tuple(info["class_names"]),
        task=info["task"], rationale=arrays.get("rationale"), words=info["words"],
        queries=info["queries"], setting={**info["setting"], "split": split},
        labels_of={**{PREFIX + n: n for n in scores}, "loo": "leave-one-out (this model)"},
        stages=stages, meta=metas,
    )
    summary = {"attributions": str(path), "split": split, "n": len(ids),
               "params": params_digest(params), "setting": setting or {}}
    tables = []
    for name in wanted[2:]:
        summary.update(STAGE_SPECS[name].summarize(data))
        tables += STAGE_SPECS[name].tables(summary)
    write_json(out / "summary.json", strict_json_value(summary))
    text = [f"# Attributions of {path.name} scored on {split} ({len(ids)} instances)\n"]
    for title, rows in tables:
        text += [f"\n## {title}\n", markdown_table(rows)]
    write_atomic(out / "tables.md", "".join(text))
    return out / "tables.md"


SCORE_FILES = ("summary.json", "tables.md")


def check_score_folder(out: Path, run_path: Path | None = None) -> None:
    """Refuses an ``out`` whose files a score would overwrite though it did not write them: a
    folder holding anything but an earlier score's ``summary.json`` and ``tables.md``, or one
    inside the run's ``analysis`` / ``wp`` folders (whose reports read their own files)."""
    out = Path(out)
    if run_path is not None:
        real, run_real = out.resolve(), Path(run_path).resolve()
        for own in ("analysis", "wp"):
            if real == run_real / own or run_real / own in real.parents:
                raise AttributionsError(
                    f"--out {out}: is inside the run's {own} folder, whose results a score "
                    f"would overwrite; use the default {Path(run_path) / 'score'}/NAME"
                )
    if out.exists() and not out.is_dir():
        raise AttributionsError(f"--out {out}: is a file, not a folder")
    if not out.is_dir():
        return
    others = sorted(p.name for p in out.iterdir() if p.name not in SCORE_FILES)
    summary = out / "summary.json"
    ours = True
    if summary.is_file():
        try:
            ours = "attributions" in json.loads(summary.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError, TypeError):
            ours = False
    if others or not ours:
        what = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "") if others else (
            "a summary.json that is not a score's")
        raise AttributionsError(
            f"--out {out}: holds results `jaxattn score` did not write ({what}); choose an "
            "empty folder or a score folder"
        )


def _reading(spec, given: dict):
    """``spec`` reading exactly the methods of ``given``."""
    return dataclasses.replace(spec, needs=tuple(given))


def score_run(run_dir, attributions, out=None, progress: bool = True) -> Path:
    """:func:`score_attributions` for a run directory; writes into ``out`` (default
    ``RUN/score/<file name without .jsonl>``) under the run's lock."""

    attributions = Path(attributions)
    with run_lock(run_dir, "jaxattn score"):
        run = load_run(run_dir)
        target = Path(out) if out else run.path / "score" / attributions.name.removesuffix(".jsonl")
        check_score_folder(target, run.path)
        split = read_attributions(attributions).split
        return score_attributions(run.model, run.params, run.prepare_data(), attributions, target,
                                  run_setting(run, split), progress)
