"""Configs as TOML text: reading a file with ``--set section.key=value`` overrides into a checked
:class:`Config`, and writing one back."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from jaxattn.config.checks import validate
from jaxattn.config.schema import FILE_DATA, PATH_KEYS, SECTIONS, Config, ConfigError
from jaxattn.core.errors import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Checks/converts ``value`` to the field's annotated type, naming ``where`` on failure."""
    kind = annotation.replace(" ", "")
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind.startswith("tuple[int"):
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
    elif kind.startswith("tuple[str"):
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    else:  # pragma: no cover - a new field type must be handled above
        raise TypeError(f"unhandled config type {annotation}")
    raise ConfigError(f"{where}: expected {annotation}, got {value!r}")


def parse_literal(text: str) -> Any:
    """Parses the right-hand side of ``--set key=value`` as a TOML value, else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def config_from_dict(
    raw: dict[str, Any], source: str = "<dict>", overridden: frozenset[str] = frozenset()
) -> Config:
    """Builds a validated :class:`Config`; ``source`` names the file in error messages and
    ``overridden`` the dotted keys that came from ``--set`` (their messages say so)."""
    cfg = Config()
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section [{section}] (expected one of {sorted(SECTIONS)})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        target = getattr(cfg, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            dotted = f"{section}.{key}"
            from_set = " (from --set)" if dotted in overridden else ""
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown key {dotted}{from_set} (known: {', '.join(sorted(fields))})"
                )
            try:
                setattr(target, key, _coerce(value, str(fields[key].type), f"{source}: {dotted}"))
            except ConfigError as err:
                raise ConfigError(f"{err}{from_set}", key=dotted) from None
    try:
        validate(cfg, source)
    except ConfigError as err:
        if err.key in overridden:
            raise ConfigError(f"{err} (from --set)", key=err.key) from None
        raise
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Returns ``raw`` with ``section.key=value`` overrides applied (values parsed as TOML)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        section, name, text = _split_override(item)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        raw[section][name] = parse_literal(text.strip())
    return raw


def _split_override(item: str) -> tuple[str, str, str]:
    """``section.key=value`` -> (section, key, value text)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=2")
    key, text = item.split("=", 1)
    section, name = key.strip().split(".", 1)
    return section, name, text


def _absolute_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """``raw`` with relative ``data.*_file`` paths made absolute against ``base``."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    for key in PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value:
            data[key] = os.path.abspath(base / Path(value).expanduser())
    return {**raw, "data": data}


def file_data_overrides(train_file: str | Path) -> list[str]:
    """The ``--set`` overrides that train on the user's file ``train_file`` (``--data-file``)."""
    quoted = json.dumps(str(train_file), ensure_ascii=False)  # a JSON string is a TOML string
    return [f'data.name="{FILE_DATA}"', f"data.train_file={quoted}"]


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a TOML config (or the defaults when ``path`` is None) and applies overrides.

    Errors name the file (``--set`` when there is none) and the dotted key; a value given with
    ``--set`` says so. An empty config file (or one of comments and empty sections alone) is refused unless
    ``--set`` gives settings.

    Relative data file paths (``data.train_file``, ``dev_file``, ``test_file``) are made absolute:
    those written in the config file against the file's folder, those given as overrides against
    the current directory. The run directory's ``config.toml`` thus names the files it used.
    """
    raw: dict[str, Any] = {}
    source = "--set" if overrides else "<defaults>"
    if path is not None:
        source = str(path)
        text = read_text(path, error=ConfigError, what="config file", allow_empty=bool(overrides))
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            at = re.search(r"\(at line (\d+), column \d+\)", str(err))
            line = f":{at.group(1)}" if at else ""
            raise ConfigError(f"{source}{line}: not valid TOML: {err}") from None
        if not overrides and not any(values for values in raw.values()):
            # Only comments or empty [sections]: the defaults would train silently.
            raise ConfigError(
                f"{source}: sets no key (only comments or empty sections); write the settings "
                'to use, e.g. [data] name = "sst2"'
            )
        raw = _absolute_paths(raw, Path(path).parent)
    overridden = frozenset(".".join(_split_override(item)[:2]).strip() for item in overrides)
    raw = _absolute_paths(apply_overrides(raw, list(overrides), source), Path.cwd())
    return config_from_dict(raw, source, overridden)


def dump_config(cfg: Config) -> str:
    """Serialises a config to TOML text that :func:`load_config` reads back unchanged."""
    lines: list[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
