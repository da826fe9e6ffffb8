"""The ``jaxattn`` command's parser and entry point: ``train``, ``analyze``, ``score``, ``wp``,
``reproduce``, ``import-torch``, ``export-torch``, ``import-hf``, ``export-hf`` and ``data list``
(each command's work: :mod:`jaxattn.cli.handlers`).

Errors the user can fix (bad arguments, config, data or run directories, files that cannot be
read or written) end in exactly one line on stderr, ``jaxattn <command>: error: <message>``,
naming the file/line/key, and exit status 2, never a traceback from inside JAX. A run folder that
the failed command created and left empty is removed again. ``jaxattn data list NAME ...`` prints
its table and exits with status 1 when a data set it names is not available.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path, PurePath

from jaxattn.cli.args import (
    DATA_DIR_HELP,
    Parser,
    count,
    option,
    path,
    python_function,
    stages,
)
from jaxattn.cli.handlers import (
    cmd_analyze,
    cmd_data_list,
    cmd_export_hf,
    cmd_export_torch,
    cmd_import_hf,
    cmd_import_torch,
    cmd_reproduce,
    cmd_score,
    cmd_train,
    cmd_wp,
)
from jaxattn.config import HEADS, WORD_ENCODERS
from jaxattn.core.errors import JaxattnError
from jaxattn.runtime import distributed
from jaxattn.runtime.compile_cache import add_cache_option, enable_compilation_cache
from jaxattn.runtime.devices import split_cpu_into_devices
from jaxattn.runtime.malloc import keep_freed_memory
from jaxattn.studies.jain_wallace.stages import AnalysisOptions
from jaxattn.studies.registry import get_stage, list_stages
from jaxattn.studies.reproduce import DEMO_DATASET

# Everything a user can fix; OSError covers files that are missing, folders, permissions, a full
# or read-only disk.
USER_ERRORS = (JaxattnError, OSError, UnicodeDecodeError)


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
    p.set_defaults(func=cmd_train)

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
    p.set_defaults(func=cmd_analyze)

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
    p.set_defaults(func=cmd_score)

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
    p.set_defaults(func=cmd_wp)

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
    p.set_defaults(func=cmd_reproduce)

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
    p.set_defaults(func=cmd_import_torch)

    p = sub.add_parser("export-torch", help="a run -> a Jain & Wallace PyTorch model folder",
                       description="Write a run as a Jain & Wallace PyTorch model folder.")
    p.add_argument("--run", type=path, required=True, help="a run directory")
    p.add_argument("--out", type=path, required=True, help="folder for enc.th, dec.th, config.json")
    p.set_defaults(func=cmd_export_torch)

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
    p.set_defaults(func=cmd_import_hf)

    p = sub.add_parser("export-hf", help="a pretrained-encoder run -> a Hugging Face folder")
    p.add_argument("--run", type=path, required=True, help="a run directory")
    p.add_argument("--out", type=path, required=True, help="folder for config.json, "
                   "model.safetensors, tokenizer.json")
    p.set_defaults(func=cmd_export_hf)

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
    p.set_defaults(func=cmd_data_list)
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
    keep_freed_memory()  # XLA's CPU buffers reused, not faulted in again (runtime/malloc.py)
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
