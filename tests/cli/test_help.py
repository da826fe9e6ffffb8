"""The help of ``jaxattn`` and of every command: every command listed, every default shown, no
markup. The commands and options are read off the parser, so a new one is checked too."""

import argparse
import re

import pytest

from jaxattn.cli.commands import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix=()) -> dict:
    """Every (sub)command's parser, keyed by its words: ("data", "list") -> parser."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[(*prefix, name)] = sub
                found.update(_commands(sub, (*prefix, name)))
    return found


def _listed(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


COMMANDS = sorted(_commands(build_parser()))


def test_the_top_level_help_lists_every_command_with_one_line(capsys):
    text = _help([], capsys)
    listed = _listed(build_parser())
    assert {"train", "analyze", "score", "wp", "reproduce", "data"} <= set(listed)
    for name in listed:
        # "  name   one line of help" (a long name has its help on the next line)
        match = re.search(rf"^ {{4}}{re.escape(name)}(\s+)(\S.*)$", text, re.M)
        assert match, f"{name} is not listed in jaxattn --help"
    # The subcommand descriptions come from the parser: one help line each, none empty.
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert all(choice.help for choice in sub._choices_actions)
    assert len(sub._choices_actions) == len(listed)


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_option_shows_its_default(words, capsys):
    parser = _commands(build_parser())[words]
    text = " ".join(_help(list(words), capsys).split())
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.required:
            continue  # positionals, flags, --help and required options have no default
        assert action.help, f"{words} {action.option_strings[0]} has no help"
        flag = action.option_strings[-1]
        start = text.index(flag, text.index("options:"))
        shown = text[start: start + len(flag) + 400]
        after = re.split(r" --[a-z]", shown[len(flag):], maxsplit=1)[0]
        assert "default" in after, f"{' '.join(words)} {flag}: no default in {after!r}"
        if action.default not in (None, argparse.SUPPRESS) and "%(default)" not in action.help:
            if "default:" in action.help:
                continue  # the help says it in words
            assert f"(default: {action.default})" in after, (words, flag, after)


def test_reproduce_help_shows_its_settings(capsys):
    text = " ".join(_help(["reproduce"], capsys).split())
    for needle in ("(default: demo)", "(default: synthetic_aspects)", "(default: bilstm)",
                   "(default: additive)", "(default: 8)", "(default: runs/demo)"):
        assert needle in text


@pytest.mark.parametrize("words", [(), *COMMANDS], ids=lambda w: " ".join(w) or "jaxattn")
def test_no_markup_in_any_help(words, capsys):
    text = _help(list(words), capsys)
    for mark in ("``", "`", ":func:", ":class:", ":mod:", ".. ", "**"):
        assert mark not in text, f"{' '.join(words) or 'jaxattn'} --help shows {mark!r}"
