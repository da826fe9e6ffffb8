"""What each ``jaxattn`` command does with its parsed arguments (:func:`jaxattn.cli.commands.
build_parser` binds one ``cmd_*`` to each): load the config, check the output folder before any
work, call the library, print the closing lines. Errors are raised, never printed here:
:func:`jaxattn.cli.commands.main` turns them into one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from jaxattn.cli.answer import own_summary, print_answer
from jaxattn.config import file_data_overrides, load_config
from jaxattn.core.errors import JaxattnError
from jaxattn.data.catalog import describe_datasets
from jaxattn.data.embeddings import check_pretrained
from jaxattn.data.sources import resolve_data_dir
from jaxattn.interop.torch_runs import export_torch, import_torch
from jaxattn.runs.pretrained import export_hf
from jaxattn.runs.run import import_hf, load_run, train_run
from jaxattn.studies.jain_wallace.analyze import analyze_run
from jaxattn.studies.jain_wallace.attributions import export_attributions, score_run
from jaxattn.studies.reproduce import reproduce
from jaxattn.studies.wiegreffe_pinter.suite import wp_run, wp_trained


def data_dir_override(args: argparse.Namespace) -> list[str]:
    """``--data-dir DIR`` as the ``--set`` it stands for (after the others, so it wins)."""
    return [f"data.data_dir={json.dumps(str(args.data_dir))}"] if args.data_dir else []


def check_out(out: Path) -> None:
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


def cmd_train(args: argparse.Namespace) -> int:
    # Config, data folder and --out are checked before JAX is imported, so their errors are fast.
    overrides = args.set or []
    if args.data_file is not None:
        overrides = [*file_data_overrides(args.data_file), *overrides]
    cfg = load_config(args.config, overrides + data_dir_override(args))
    check_out(args.out)

    resolve_data_dir(cfg.data.data_dir or None, "--data-dir" if args.data_dir else "data.data_dir")

    check_pretrained(cfg.data.embeddings)

    metrics = train_run(cfg, args.out, progress=not args.quiet)
    test = metrics["test"]
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in ("accuracy", "f1", "auc") if k in test)
    print(
        f"{args.out}: test {shown} (epoch {metrics['best_epoch']}, selected on {metrics['selection']})"
    )
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
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


def cmd_analyze(args: argparse.Namespace) -> int:

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


def cmd_score(args: argparse.Namespace) -> int:

    tables = score_run(args.run, args.attributions, args.out, progress=not args.quiet)
    print(f"tables: {tables}")
    return 0


def cmd_wp(args: argparse.Namespace) -> int:

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


def cmd_reproduce(args: argparse.Namespace) -> int:
    check_out(args.out)

    suites = ("jain_wallace", "wiegreffe_pinter") if args.suite in ("demo", "all") else (args.suite,)
    index = reproduce(
        args.out,
        dataset=args.dataset,
        encoder=args.encoder,
        attention=args.attention,
        overrides=(args.set or []) + data_dir_override(args),
        suites=suites,
        limit=args.limit,
        seeds=args.seeds,
        progress=not args.quiet,
    )
    print_answer(args.out / "run", index)
    return 0


def cmd_import_torch(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, (args.set or []) + data_dir_override(args))
    check_out(args.out)

    metrics = import_torch(args.checkpoint, args.vocab, cfg, args.out)
    test = metrics["test"]
    shown = ", ".join(f"{k} {test[k]:.4f}" for k in ("accuracy", "f1", "auc") if k in test)
    print(f"{args.out}: imported {metrics['model']['encoder']} + {metrics['model']['attention']}; "
          f"test {shown}")
    return 0


def cmd_export_torch(args: argparse.Namespace) -> int:
    check_out(args.out)

    print(f"{export_torch(args.run, args.out)}: enc.th, dec.th, config.json, vocab.json")
    return 0


def cmd_import_hf(args: argparse.Namespace) -> int:
    overrides = ["model.encoder=\"bert\"", f"model.pretrained={json.dumps(str(args.folder))}",
                 f"model.head={json.dumps(args.head)}", "train.optimizer=\"adamw\"",
                 "train.learning_rate=1e-4", "train.weight_decay=0.01", "train.epochs=1"]
    cfg = load_config(args.config, overrides + (args.set or []) + data_dir_override(args))
    check_out(args.out)

    import_hf(cfg, args.out)
    print(f"{args.out}: imported {args.folder} with an unfitted {cfg.model.head} head; fine-tune "
          f"with: jaxattn train --config {args.out / 'config.toml'} --out {args.out}")
    return 0


def cmd_export_hf(args: argparse.Namespace) -> int:
    check_out(args.out)

    print(f"{export_hf(load_run(args.run), args.out)}: config.json, model.safetensors, "
          "tokenizer.json")
    return 0


class CliError(JaxattnError):
    """A command-line argument that cannot be used; the message names the option."""
