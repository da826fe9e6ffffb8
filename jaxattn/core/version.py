"""The package's version, kept apart so that any layer can read it."""

__version__ = "0.2.0"
