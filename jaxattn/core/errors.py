"""The errors a user can fix, and the reading of text files that every input goes through.

Every problem with the user's input (a config, a data file, a run directory, a command-line
argument) is a :class:`JaxattnError` whose message is one line: the file and line (or the dotted
config key, or the option) first, then what is wrong and, where it is not obvious, what to do.
``jaxattn`` prints that line as ``jaxattn <command>: error: <message>`` and exits with status 2;
anything else that escapes is a bug and keeps its traceback.

The subclasses say where the problem lies:

* :class:`ConfigError`: a config file or ``--set`` value;
* :class:`jaxattn.data.dataset.DataError`: a data set (missing, malformed or unreadable files);
* :class:`RunError`: a run directory that is damaged or does not match what is asked of it.

Text files (configs, data files, vocabularies) are read with :func:`read_text`: strict UTF-8, a
UTF-8 byte-order mark accepted and dropped, and an empty file (nothing but whitespace) refused
unless the caller allows it. Each failure names the file, and a byte that is not UTF-8 also its
line.
"""

from __future__ import annotations

import codecs
import io
import json
from pathlib import Path


class JaxattnError(Exception):
    """A problem the user can fix; the message is one line naming the file and line or key."""


class ConfigError(JaxattnError, ValueError):
    """A configuration that cannot be used; the message names the file and key.

    Attributes:
      key: the dotted key at fault, where the check knows it (None otherwise).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class RunError(JaxattnError):
    """A run directory that is damaged, incomplete or does not match the config asked for."""


class PretrainedError(JaxattnError):
    """A pretrained-model folder that is incomplete, malformed or not a supported BERT."""


def read_text(
    path: str | Path,
    *,
    error: type[Exception] = JaxattnError,
    what: str = "file",
    allow_empty: bool = False,
) -> str:
    """The contents of the text file ``path``, decoded as strict UTF-8.

    Args:
      error: the :class:`JaxattnError` subclass raised on failure.
      what: what the file is, for messages ("config file", "data file", ...).
      allow_empty: whether a file holding nothing but whitespace is returned rather than refused.

    A missing file, a folder, an unreadable file, UTF-16 text, a byte that is not UTF-8 and (unless
    allowed) an empty file each raise ``error`` with one line naming the file. A leading UTF-8
    byte-order mark is dropped.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except NotADirectoryError:
        raise error(f"{path}: {what} not found (a part of the path is not a folder)") from None
    except PermissionError:
        raise error(f"{path}: {what} cannot be read (permission denied)") from None
    except OSError as err:
        raise error(f"{path}: {what} cannot be read ({err.strerror or err})") from None
    return decode_text(raw, path, error=error, allow_empty=allow_empty)


def read_json_object(path: str | Path, *, error: type[Exception] = JaxattnError,
                     what: str = "file") -> dict:
    """The JSON object in ``path`` (:func:`read_text`'s checks first); anything else is one
    ``error`` line naming the file (and the line, for a syntax error)."""
    try:
        value = json.loads(read_text(path, error=error, what=what))
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: not JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object")
    return value


def decode_text(
    raw: bytes,
    where: str | Path,
    *,
    error: type[Exception] = JaxattnError,
    allow_empty: bool = False,
) -> str:
    """``raw`` decoded as strict UTF-8 (see :func:`read_text`); ``where`` names it in messages."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise error(f"{where}: is UTF-16 text, not UTF-8; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line = raw.count(b"\n", 0, err.start) + 1
        raise error(
            f"{where}:{line}: not UTF-8 (byte 0x{raw[err.start]:02x} at byte "
            f"{err.start - line_start + 1} of the line); save the file as UTF-8"
        ) from None
    if not allow_empty and not text.strip():
        raise error(f"{where}: is empty")
    return text


def text_lines(text: str) -> list[str]:
    """The lines of ``text`` as reading a file in text mode gives them: split at ``\\n``,
    ``\\r\\n`` or ``\\r`` (each ending in ``\\n``), so line numbers match an editor's."""
    return io.StringIO(text, newline=None).readlines()
