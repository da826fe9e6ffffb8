"""The ``jaxattn`` command: ``train``, ``analyze``, ``score``, ``wp``, ``reproduce``,
``import-torch``, ``export-torch`` and ``data list``.

Errors the user can fix (bad arguments, config, data or run directories, files that cannot be
read or written) end in exactly one line on stderr, ``jaxattn <command>: error: <message>``,
naming the file/line/key, and exit status 2, never a traceback from inside JAX. A run folder that
the failed command created and left empty is removed again. ``jaxattn data list NAME ...`` prints
its table and exits with status 1 when a data set it names is not available.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path, PurePath

from jaxattn.cli.answer import own_summary, print_answer
from jaxattn.cli.args import (
    DATA_DIR_HELP,
    Parser,
    count,
    option,
    path,
    python_function,
    stages,
)
from jaxattn.config import HEADS, WORD_ENCODERS, file_data_overrides, load_config
from jaxattn.core.errors import JaxattnError
from jaxattn.data.catalog import describe_datasets
from jaxattn.data.embeddings import check_pretrained
from jaxattn.data.sources import resolve_data_dir
from jaxattn.interop.torch_runs import export_torch, import_torch
from jaxattn.runs.pretrained import export_hf
from jaxattn.runs.run import import_hf, load_run, train_run
from jaxattn.runtime import distributed
from jaxattn.runtime.compile_cache import add_cache_option, enable_compilation_cache
from jaxattn.runtime.devices import split_cpu_into_devices
from jaxattn.studies.jain_wallace.analyze import analyze_run
from jaxattn.studies.jain_wallace.attributions import export_attributions, score_run
from jaxattn.studies.jain_wallace.stages import AnalysisOptions
from jaxattn.studies.registry import get_stage, list_stages
from jaxattn.studies.reproduce import DEMO_DATASET, reproduce
from jaxattn.studies.wiegreffe_pinter.suite import wp_run, wp_trained

# Everything a user can fix; OSError covers files that are missing, folders, permissions, a full
# or read-only disk.
USER_ERRORS = (JaxattnError, OSError, UnicodeDecodeError)


def _data_dir_override(args: argparse.Namespace) -> list[str]:
    """``--data-dir DIR`` as the ``--set`` it stands for (after the others, so it wins)."""
    return [f"data.data_dir={json.dumps(str(args.data_dir))}"] if args.data_dir else []


def _check_out(out: Path) -> None:
    """A run folder that can be created or written to, checked before any work is done."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: is a file, not a run folder; choose a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"--out {out}: cannot write in {existing} (permission denied)")


def _cmd_train(args: argparse.Namespace) -> int:
    # Config, data folder and --out are checked before JAX is imported, so their errors are fast.
    overrides = args.set or []
    if args.data_file is not None:
        overrides = [*file_data_overrides(args.data_file), *overrides]
    cfg = load_config(args.config, overrides + _data_dir_override(args))
    _check_out(args.out)

    resolve_data_dir(cfg.data.data_dir or None, "--data-dir" if args.data_dir else "data.data_dir")

    check_pretrained(cfg.data.embeddings)

    metrics = train_run(cfg, args.out, progress=not args.quiet)
    test = metrics["test"]
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in ("accuracy", "f1", "auc") if k in test)
    print(
        f"{args.out}: test {shown} (epoch {metrics['best_epoch']}, selected on {metrics['selection']})"
    )
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    """Exit status 0, or 1 when a data set named on the command line is not available."""

    resolve_data_dir(args.data_dir, "--data-dir")  # a folder that is not there: one error line
    rows = describe_datasets(args.data_dir, names=args.names or None)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'name':16s} {'task':10s} {'train':>7s} {'dev':>6s} {'test':>6s}  source")
        for row in rows:
            sizes = row.get("sizes") or {}
            cells = [
                f"{sizes.get(s, '-'):>{w}}" for s, w in (("train", 7), ("dev", 6), ("test", 6))
            ]
            status = row["source"] if row["available"] else f"NOT AVAILABLE: {row['error']}"
            print(f"{row['name']:16s} {row.get('task', '?'):10s} {' '.join(cells)}  {status}")
            for note in row.get("notes", []):
                print(f"{'':16s} note: {note}")
    missing = [row for row in rows if not row["available"]]
    if args.names and missing:
        name, why = missing[0]["name"], " ".join(str(missing[0]["error"]).split())
        more = f" (and {len(missing) - 1} more: {', '.join(r['name'] for r in missing[1:])})"
        print(
            "jaxattn data list: error: not available: "
            + (why if why.startswith(name) else f"{name}: {why}")
            + (more if len(missing) > 1 else ""),
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:

    report = analyze_run(
        args.run, split=args.split, only=args.only, limit=args.limit, progress=not args.quiet,
        **dict(args.option),
    )
    if args.export_attributions is not None:
        n = export_attributions(report.parent, args.export_attributions)
        print(f"attributions: {n} instances -> {args.export_attributions}")
    # The verdict of the analysis just written (a narrower one is written beside the main one).
    print_answer(args.run, report, jw=own_summary(report))
    return 0


def _cmd_score(args: argparse.Namespace) -> int:

    tables = score_run(args.run, args.attributions, args.out, progress=not args.quiet)
    print(f"tables: {tables}")
    return 0


def _cmd_wp(args: argparse.Namespace) -> int:

    if args.model is not None:
        built = args.model()
        if not (isinstance(built, tuple) and len(built) == 3):
            raise CliError("--model: the function must return (model, data, TrainConfig), got "
                           f"{type(built).__name__}")
        model, data, config = built
        report = wp_trained(args.run, model, data, config, only=args.only, seeds=args.seeds,
                            progress=not args.quiet)
    else:
        report = wp_run(args.run, only=args.only, seeds=args.seeds, progress=not args.quiet)
    print_answer(args.run, report, wp=own_summary(report))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    _check_out(args.out)

    suites = ("jain_wallace", "wiegreffe_pinter") if args.suite in ("demo", "all") else (args.suite,)
    index = reproduce(
        args.out,
        dataset=args.dataset,
        encoder=args.encoder,
        attention=args.attention,
        overrides=(args.set or []) + _data_dir_override(args),
        suites=suites,
        limit=args.limit,
        seeds=args.seeds,
        progress=not args.quiet,
    )
    print_answer(args.out / "run", index)
    return 0


def _cmd_import_torch(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, (args.set or []) + _data_dir_override(args))
    _check_out(args.out)

    metrics = import_torch(args.checkpoint, args.vocab, cfg, args.out)
    test = metrics["test"]
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in ("accuracy", "f1", "auc") if k in test)
    print(f"{args.out}: imported {metrics['model']['encoder']} + {metrics['model']['attention']}; "
          f"test {shown}")
    return 0


def _cmd_export_torch(args: argparse.Namespace) -> int:
    _check_out(args.out)

    print(f"{export_torch(args.run, args.out)}: enc.th, dec.th, config.json, vocab.json")
    return 0


def _cmd_import_hf(args: argparse.Namespace) -> int:
    overrides = ["model.encoder=\"bert\"", f"model.pretrained={json.dumps(str(args.folder))}",
                 f"model.head={json.dumps(args.head)}", "train.optimizer=\"adamw\"",
                 "train.learning_rate=1e-4", "train.weight_decay=0.01", "train.epochs=1"]
    cfg = load_config(args.config, overrides + (args.set or []) + _data_dir_override(args))
    _check_out(args.out)

    import_hf(cfg, args.out)
    print(f"{args.out}: imported {args.folder} with an unfitted {cfg.model.head} head; fine-tune "
          f"with: jaxattn train --config {args.out / 'config.toml'} --out {args.out}")
    return 0


def _cmd_export_hf(args: argparse.Namespace) -> int:
    _check_out(args.out)

    print(f"{export_hf(load_run(args.run), args.out)}: config.json, model.safetensors, "
          "tokenizer.json")
    return 0


class CliError(JaxattnError):
    """A command-line argument that cannot be used; the message names the option."""


DESCRIPTION = (
    "Is attention an explanation? Train attention models, run the Jain & Wallace and "
    "Wiegreffe & Pinter analyses on them and write HTML reports with a verdict."
)
EPILOG = "Run 'jaxattn COMMAND --help' for a command's options and their defaults."
RUN_HELP = "a run directory written by 'jaxattn train'"
SET_HELP = "override a config value; may be repeated (default: none)"
QUIET_HELP = "no progress bars or per-epoch lines (the closing lines are still printed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="jaxattn", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, title="commands",
                                metavar="COMMAND")

    p = sub.add_parser("train", help="train one model from a config into a run directory",
                       description="Train one model from a config into a run directory.")
    p.add_argument(
        "--config", type=path,
        help="TOML config, e.g. configs/<dataset>_<encoder>_<attention>.toml "
        "(default: the built-in defaults)",
    )
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--data-dir", type=path, default=None, help=DATA_DIR_HELP)
    p.add_argument(
        "--data-file",
        type=path,
        metavar="PATH",
        help="train on your own CSV/TSV/JSONL file (sets data.name=file, data.train_file=PATH; "
        "default: the config's data set)",
    )
    p.add_argument("--out", type=path, required=True, help="run directory (resumed if it exists)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    distributed.add_arguments(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("analyze", help="Jain & Wallace analyses of a trained run (RUN/analysis/)",
                       description="Jain & Wallace analyses of a trained run; writes "
                       "RUN/analysis/index.html and prints the verdict, the test scores and "
                       "the report's path.")
    p.add_argument("--run", type=path, required=True, help=RUN_HELP)
    p.add_argument("--split", default="test", choices=("train", "dev", "test"),
                   help="the split to analyse")
    p.add_argument(
        "--only",
        type=stages,
        help="comma-separated stages (default: all but the opt-in "
        + ", ".join(name for name in list_stages() if not get_stage(name).by_default)
        + "; a stage that does not apply to the model is "
        "skipped, and the stages a chosen one reads run with it): "
        + "; ".join(f"{name}: {get_stage(name).description}" for name in list_stages()),
    )
    p.add_argument(
        "--export-attributions",
        type=path,
        default=None,
        metavar="FILE.jsonl",
        help="also write every importance per instance as JSON lines, read by 'jaxattn score' "
        "(default: not written)",
    )
    p.add_argument(
        "--limit", type=count(1), default=None,
        help="analyse only the first N instances (default: the whole split)",
    )
    p.add_argument(
        "--option", type=option, action="append", default=[], metavar="NAME=VALUE",
        help="an analysis option, repeatable, part of its stages' cache keys (default: none, "
        "so each option has its default: " + ", ".join(
            f"{f.name}={getattr(AnalysisOptions(), f.name)}"
            for f in dataclasses.fields(AnalysisOptions)) + ")",
    )
    p.add_argument(
        "--cpu-devices",
        type=count(0, "one per core"),
        default=0,
        help="on a CPU, split each batch over this many single-threaded devices "
        "(default: 0, one per core; 1 turns it off)",
    )
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    distributed.add_arguments(p)
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser(
        "score",
        help="faithfulness and plausibility tables of token attributions computed elsewhere "
        "(RUN/score/NAME/)",
        description="Faithfulness and plausibility tables of token attributions computed "
        "elsewhere.",
    )
    p.add_argument("--run", type=path, required=True, help=RUN_HELP)
    p.add_argument(
        "--attributions", type=path, required=True, metavar="FILE.jsonl",
        help='one JSON object a line: {"id": row, "split": "test", "tokens": [...], '
        '"scores": {"method": [one number per token]}}',
    )
    p.add_argument("--out", type=path, default=None,
                   help="output folder (default: RUN/score/<file name>)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("wp", help="Wiegreffe & Pinter analyses of a trained run (RUN/wp/)",
                       description="Wiegreffe & Pinter analyses of a trained run; writes "
                       "RUN/wp/index.html and prints the verdict, the test scores and the "
                       "report's path.")
    p.add_argument("--run", type=path, required=True, help=RUN_HELP)
    p.add_argument(
        "--only",
        type=stages,
        help="comma-separated stages: uniform, seeds, diagnostic, adversary (default: all)",
    )
    p.add_argument(
        "--seeds", type=count(1), default=8, help="extra seeds for the variance baseline"
    )
    p.add_argument(
        "--model", type=python_function, default=None, metavar="FILE.py:FUNCTION",
        help="for a folder that jaxattn.train wrote from a model of your own: a function of no "
        "arguments returning (model, data, TrainConfig) as they were trained (default: none, "
        "RUN has the config.toml of jaxattn train)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    distributed.add_arguments(p)
    p.set_defaults(func=_cmd_wp)

    p = sub.add_parser(
        "reproduce", help="train one model and run both studies (demo: no files needed)",
        description="Train one model and run both studies on it, then write OUT/index.html "
        "with the verdict and links to both reports. Every stage resumes: running it again "
        "skips what is done.")
    p.add_argument("--suite", default="demo",
                   choices=("demo", "all", "jain_wallace", "wiegreffe_pinter"),
                   help="which studies: demo and all run both")
    p.add_argument("--dataset", default=DEMO_DATASET,
                   help="data set name, one of 'jaxattn data list'; synthetic_aspects, the "
                   "generated asked-aspect task, needs attention; synthetic, the planted-rationale "
                   "task, does not (uniform attention does as well)")
    p.add_argument("--encoder", default="bilstm", choices=WORD_ENCODERS, help="encoder")
    p.add_argument("--attention", default="additive", choices=("additive", "dot"),
                   help="attention scorer")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--limit", type=count(1), default=None,
                   help="analyse only the first N test instances (default: all of them)")
    p.add_argument("--seeds", type=count(1), default=8,
                   help="extra seeds for the variance baseline")
    p.add_argument("--data-dir", type=path, default=None, help=DATA_DIR_HELP)
    p.add_argument("--out", type=path, default=Path("runs/demo"),
                   help="output folder (the run is trained into OUT/run)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    distributed.add_arguments(p)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "import-torch", help="a Jain & Wallace PyTorch model folder (enc.th, dec.th) -> run",
        description="Turn a Jain & Wallace PyTorch model folder into a jaxattn run.")
    p.add_argument("--checkpoint", type=path, required=True,
                   help="folder with the J&W enc.th and dec.th state dicts")
    p.add_argument("--vocab", type=path, required=True,
                   help="its vocabulary: J&W's pickled vec.p, a JSON list / object, or a text file")
    p.add_argument("--config", type=path, help="TOML config naming the data set; model keys are "
                   "taken from the checkpoint (default: the built-in defaults)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--data-dir", type=path, default=None, help=DATA_DIR_HELP)
    p.add_argument("--out", type=path, required=True, help="new run directory")
    p.set_defaults(func=_cmd_import_torch)

    p = sub.add_parser("export-torch", help="a run -> a Jain & Wallace PyTorch model folder",
                       description="Write a run as a Jain & Wallace PyTorch model folder.")
    p.add_argument("--run", type=path, required=True, help="a run directory")
    p.add_argument("--out", type=path, required=True, help="folder for enc.th, dec.th, config.json")
    p.set_defaults(func=_cmd_export_torch)

    p = sub.add_parser("import-hf", help="a Hugging Face BERT folder -> a run with an unfitted "
                       "head, ready to fine-tune")
    p.add_argument("folder", type=str, metavar="DIR",
                   help="folder with config.json, model.safetensors and tokenizer.json or "
                   "vocab.txt (or 'minilm': the packaged all-MiniLM-L6-v2)")
    p.add_argument("--head", default="cls", choices=HEADS,
                   help="cls: pooler + linear over [CLS]; attention: additive attention pooling")
    p.add_argument("--config", type=path, help="TOML config (data set, training); the model "
                   "keys come from the folder (default: none, the built-in defaults)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)
    p.add_argument("--data-dir", type=path, default=None, help=DATA_DIR_HELP)
    p.add_argument("--out", type=path, required=True, help="new run directory")
    p.set_defaults(func=_cmd_import_hf)

    p = sub.add_parser("export-hf", help="a pretrained-encoder run -> a Hugging Face folder")
    p.add_argument("--run", type=path, required=True, help="a run directory")
    p.add_argument("--out", type=path, required=True, help="folder for config.json, "
                   "model.safetensors, tokenizer.json")
    p.set_defaults(func=_cmd_export_hf)

    p = sub.add_parser("data", help="data sets: 'jaxattn data list' lists them",
                       description="Data sets.")
    dsub = p.add_subparsers(dest="data_command", required=True, title="commands",
                            metavar="COMMAND")
    p = dsub.add_parser(
        "list", help="list the data sets, their split sizes and where they were found",
        description="List the data sets, their split sizes and where they were found.",
    )
    p.add_argument("names", nargs="*", help="only these data sets (default: all)")
    p.add_argument(
        "--data-dir",
        type=path,
        default=None,
        help="data folder (default: $JAXATTN_DATA, then ../shared/data)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_data_list)
    for name in ("train", "analyze", "wp", "reproduce"):
        add_cache_option(sub.choices[name])
    return parser


def _innermost_path(err: BaseException) -> PurePath | None:
    """The path a decoding error was reading: the innermost frame's path variable, if any."""
    found, tb = None, err.__traceback__
    while tb is not None:
        paths = [v for v in tb.tb_frame.f_locals.values() if isinstance(v, PurePath)]
        found = paths[-1] if paths else found
        tb = tb.tb_next
    return found


def error_line(err: BaseException) -> str:
    """One line for a user-fixable error, naming the path where the error knows it."""
    if isinstance(err, UnicodeDecodeError):
        where = _innermost_path(err) or "a file"
        return f"{where}: not UTF-8 (byte 0x{err.object[err.start]:02x}); save the file as UTF-8"
    if isinstance(err, OSError) and err.filename is not None:
        what = (err.strerror or type(err).__name__).lower()
        if err.filename2 is not None:
            return f"{err.filename} -> {err.filename2}: {what}"
        return f"{err.filename}: {what}"
    return " ".join(str(err).split()) or type(err).__name__


def _command(args: argparse.Namespace) -> str:
    sub = getattr(args, "data_command", None)
    return f"{args.command} {sub}" if sub else args.command


def _remove_empty_folders(path: Path) -> None:
    """Removes ``path`` and the folders in it, if they hold no file at all (never a file)."""
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        _remove_empty_folders(child)
    try:
        path.rmdir()
    except OSError:
        pass  # not empty: a file is in it


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        # Before anything imports JAX; a no-op when it is already imported (tests, notebooks).

        split_cpu_into_devices(args.cpu_devices)
    if hasattr(args, "compilation_cache"):
        enable_compilation_cache(args.compilation_cache)
    out = getattr(args, "out", None)
    out_existed = out is not None and (out.exists() or out.is_symlink())
    try:
        if hasattr(args, "coordinator"):
            distributed.from_args(args)
        return args.func(args)
    except USER_ERRORS as err:
        if out is not None and not out_existed:
            _remove_empty_folders(out)
        print(f"jaxattn {_command(args)}: error: {error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed stages are kept and the next run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
