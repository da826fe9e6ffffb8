"""The ``jaxattn`` command line: a thin layer over the library's public functions."""

from jaxattn.cli.commands import main

__all__ = ["main"]
