"""The ``jaxattn`` command: ``train``, ``data list``, ``analyze``, ``wp`` and ``reproduce``.

Errors the user can fix (bad config, bad or missing data, unfinished runs) end in one line on
stderr naming the file/line/key and exit status 2, never a traceback from inside JAX.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jaxattn.config import ENCODERS, ConfigError, file_data_overrides, load_config
from jaxattn.data.dataset import DataError

USER_ERRORS = (ConfigError, DataError, FileNotFoundError)


def _cmd_train(args: argparse.Namespace) -> int:
    from jaxattn.run import train_run

    overrides = args.set or []
    if args.data_file is not None:
        overrides = [*file_data_overrides(args.data_file), *overrides]
    cfg = load_config(args.config, overrides)
    metrics = train_run(cfg, args.out, progress=not args.quiet)
    test = metrics["test"]
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in ("accuracy", "f1", "auc") if k in test)
    print(
        f"{args.out}: test {shown} (epoch {metrics['best_epoch']}, selected on {metrics['selection']})"
    )
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from jaxattn.data.catalog import describe_datasets

    rows = describe_datasets(args.data_dir, names=args.names or None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':16s} {'task':10s} {'train':>7s} {'dev':>6s} {'test':>6s}  source")
    for row in rows:
        sizes = row.get("sizes") or {}
        cells = [f"{sizes.get(s, '-'):>{w}}" for s, w in (("train", 7), ("dev", 6), ("test", 6))]
        status = row["source"] if row["available"] else f"NOT AVAILABLE: {row['error']}"
        print(f"{row['name']:16s} {row.get('task', '?'):10s} {' '.join(cells)}  {status}")
        for note in row.get("notes", []):
            print(f"{'':16s} note: {note}")
    return 0


def _only(text: str | None) -> set[str] | None:
    return {part.strip() for part in text.split(",") if part.strip()} if text else None


def _cmd_analyze(args: argparse.Namespace) -> int:
    from jaxattn.analysis.jain_wallace import analyze_run

    report = analyze_run(
        args.run, split=args.split, only=_only(args.only), limit=args.limit, progress=not args.quiet
    )
    print(f"report: {report}")
    return 0


def _cmd_wp(args: argparse.Namespace) -> int:
    from jaxattn.analysis.wiegreffe_pinter import wp_run

    report = wp_run(args.run, only=_only(args.only), seeds=args.seeds, progress=not args.quiet)
    print(f"report: {report}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from jaxattn.reproduce import reproduce

    suites = ("jain_wallace", "wiegreffe_pinter") if args.suite in ("demo", "all") else (args.suite,)
    index = reproduce(
        args.out,
        dataset=args.dataset,
        encoder=args.encoder,
        attention=args.attention,
        overrides=args.set or [],
        suites=suites,
        limit=args.limit,
        seeds=args.seeds,
        progress=not args.quiet,
    )
    print(f"report: {index.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxattn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one model from a config into a run directory")
    p.add_argument(
        "--config", type=Path, help="TOML config (configs/<dataset>_<encoder>_<attention>.toml)"
    )
    p.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value"
    )
    p.add_argument(
        "--data-file",
        type=Path,
        metavar="PATH",
        help="train on your own CSV/TSV/JSONL file (sets data.name=file, data.train_file=PATH)",
    )
    p.add_argument("--out", type=Path, required=True, help="run directory (resumed if it exists)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("analyze", help="J&W analyses of a trained run (writes RUN/analysis/)")
    p.add_argument(
        "--run", type=Path, required=True, help="a run directory written by `jaxattn train`"
    )
    p.add_argument("--split", default="test", choices=("train", "dev", "test"))
    p.add_argument("--only", help="comma-separated stages: grad,loo,ig,perm,adv (default all)")
    p.add_argument("--limit", type=int, default=None, help="analyse only the first N instances")
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        help="on a CPU, split each batch over this many single-threaded devices "
        "(default: one per core; 1 turns it off)",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("wp", help="W&P analyses of a trained run (writes RUN/wp/)")
    p.add_argument(
        "--run", type=Path, required=True, help="a run directory written by `jaxattn train`"
    )
    p.add_argument(
        "--only", help="comma-separated stages: uniform,seeds,diagnostic,adversary (default all)"
    )
    p.add_argument("--seeds", type=int, default=8, help="extra seeds for the variance baseline")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_wp)

    p = sub.add_parser("reproduce", help="train one model and run both studies (demo: no files needed)")
    p.add_argument("--suite", default="demo", choices=("demo", "all", "jain_wallace", "wiegreffe_pinter"))
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--encoder", default="bilstm", choices=ENCODERS)
    p.add_argument("--attention", default="additive", choices=("additive", "dot"))
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--limit", type=int, default=None, help="analyse only the first N test instances")
    p.add_argument("--seeds", type=int, default=8, help="extra seeds for the variance baseline")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("data", help="data sets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser(
        "list", help="list the data sets, their split sizes and where they were found"
    )
    p.add_argument("names", nargs="*", help="only these data sets")
    p.add_argument(
        "--data-dir", default=None, help="data directory (default $JAXATTN_DATA, ../shared/data)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_data_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        # Before anything imports JAX; a no-op when it is already imported (tests, notebooks).
        from jaxattn.devices import split_cpu_into_devices

        split_cpu_into_devices(args.cpu_devices)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"jaxattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed stages are kept and the next run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
