"""The README's shell commands, as written, still work.

Every line of every ``bash`` code block of README.md is one of:

* run: executed with bash in a temporary folder holding copies of the files it reads, with the
  venv running this test standing for ``.venv`` (``source .venv/bin/activate`` puts its ``bin``
  first on PATH, ``.venv/bin/python`` is its python) and a tiny setting appended (one epoch);
* parsed: too long to run here (``make demo`` trains and runs both studies for minutes, ``make
  test`` is the whole suite, ``examples/custom_model.py`` trains and analyses 500 instances):
  ``make -n`` must print its recipe and the ``jaxattn`` command in it must parse with the real
  argument parser; a script's ``--help`` must list every option the README gives it.

A README command the test does not know fails it: add it to one of the tables below.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxattn.cli.commands import build_parser

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# The command as written -> what makes it tiny (appended) and files it needs beside it: one
# epoch, and one padded length (the reviews have 4 to 21 words), so one program per step.
TINY = "--set train.epochs=1 --set 'train.buckets=[32]'"
RUN = {
    "jaxattn train --config configs/user_csv_example.toml --out runs/reviews": TINY,
    "jaxattn train --data-file my.csv --set data.text_column=review --out runs/mine": TINY,
}
SETUP = {"source .venv/bin/activate"}
PARSED_MAKE = {"make demo", "make test"}
PARSED_SCRIPT = {
    ".venv/bin/python examples/custom_model.py --out runs/custom",
    ".venv/bin/python examples/custom_model.py --data sst2 --out runs/sst2",
}


def readme_commands() -> list[str]:
    """Every command of the README's ``bash`` blocks, comments removed."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def test_every_readme_command_is_checked_here():
    commands = readme_commands()
    assert len(commands) >= 6, commands  # the blocks were found
    known = set(RUN) | SETUP | PARSED_MAKE | PARSED_SCRIPT
    unknown = [c for c in commands if c not in known]
    assert not unknown, f"README commands no test checks (add them here): {unknown}"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's package, whatever the venv installed
    return env


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """A folder with what the commands read: the configs, the example data and scripts, a
    ``.venv`` standing for the venv in use, and ``my.csv`` (the README's own file) made from
    the example reviews with a ``review`` column."""
    where = tmp_path_factory.mktemp("readme")
    for name in ("configs", "examples"):
        shutil.copytree(ROOT / name, where / name)
    (where / ".venv").symlink_to(VENV_BIN.parent)
    reviews = (ROOT / "examples" / "data" / "reviews.csv").read_text()
    (where / "my.csv").write_text(reviews.replace("text,label", "review,label", 1))
    return where


def test_the_runnable_commands_run_as_written(copy):
    commands = readme_commands()
    script = ["set -e"]
    for command in commands:
        if command in SETUP:
            script.append(command)
        elif command in RUN:
            script.append(f"{command} {RUN[command]} --quiet")
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=copy, env=_environment(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for out in ("runs/reviews", "runs/mine"):
        assert (copy / out / "metrics.json").exists(), out


def test_make_targets_print_a_recipe_whose_jaxattn_command_parses():
    for command in PARSED_MAKE:
        done = subprocess.run(["make", "-n", *command.split()[1:], "VENV=/nonexistent-venv"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        recipe = done.stdout
        for line in recipe.splitlines():
            if re.match(r"\S*/jaxattn ", line):
                build_parser().parse_args(shlex.split(line)[1:])  # SystemExit on a stale option
        if command == "make demo":
            assert "jaxattn reproduce --suite demo" in recipe
        else:
            assert "pytest" in recipe and "ruff check" in recipe
            for folder in re.search(r"ruff check (.*)", recipe).group(1).split():
                assert (ROOT / folder).is_dir(), folder


def test_scripts_accept_the_options_the_readme_gives_them(copy):
    for command in PARSED_SCRIPT:
        words = shlex.split(command)
        done = subprocess.run([*words[:2], "--help"], cwd=copy, env=_environment(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for option in (w for w in words[2:] if w.startswith("--")):
            assert option in done.stdout, (command, option)
