"""The ``jaxattn`` command line: a thin layer over the library's public functions."""

from jaxattn.cli.main import main

__all__ = ["main"]
