"""The command line's argument types: each refuses a bad value with a one-line usage error."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from jaxattn.config import parse_literal


def count(minimum: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (``meaning`` explains the smallest value)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            rule = f"0 ({meaning}) or a positive number" if meaning else f"a number >= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        return value

    return parse


def path(text: str) -> Path:
    """An argparse type: a path, not the empty string (which would mean the current folder) and
    not a loop of symbolic links."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    try:
        os.stat(text)
    except OSError as err:
        # A loop of symbolic links can be neither read nor created: refused here, before any
        # command resolves it (which would end in a RuntimeError from pathlib).
        if err.errno == errno.ELOOP:
            raise argparse.ArgumentTypeError(
                f"{text}: a loop of symbolic links (too many levels); point it at a real folder"
            ) from None
    return Path(text)


def stages(text: str) -> set[str]:
    """An argparse type: comma-separated stage names, at least one."""
    stages = {part.strip() for part in text.split(",") if part.strip()}
    if not stages:
        raise argparse.ArgumentTypeError(
            f"expected one or more comma-separated stages, got {text!r}"
        )
    return stages


def option(text: str) -> tuple[str, object]:
    """An argparse type: ``NAME=VALUE``, the value read as a TOML value, else a bare string
    (``num_permutations=100``, ``head_interventions=uniform,zero``). The name is checked where
    the options are used, against the fields it may set."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), parse_literal(value.strip())


def python_function(text: str) -> Callable:
    """An argparse type: ``FILE.py:NAME``, the function ``NAME`` of the Python file ``FILE.py``
    (the file is imported, under a name of its own, so its ``if __name__ == "__main__"`` part
    does not run)."""
    file, sep, name = text.rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected FILE.py:FUNCTION, got {text!r}")
    if not Path(file).is_file():
        raise argparse.ArgumentTypeError(f"{file}: no such file")
    spec = importlib.util.spec_from_file_location(f"jaxattn_user_{Path(file).stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, name, None)
    if not callable(function):
        raise argparse.ArgumentTypeError(f"{file}: defines no function {name!r}")
    return function


DATA_DIR_HELP = "data folder (sets data.data_dir; default: $JAXATTN_DATA, then ../shared/data)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, ``(default: X)``, unless the help already
    says what the default is (an option whose default is None must say it in words)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or action.required or action.nargs == 0
                or action.default in (None, argparse.SUPPRESS) or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line like every other error and every default in
    the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
