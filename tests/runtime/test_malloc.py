"""glibc's allocator kept from returning XLA's freed buffers to the system."""

import ctypes.util
import platform

import pytest

from jaxattn.runtime import malloc


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc",
                    reason="mallopt is glibc's")
def test_glibc_takes_both_settings():
    assert ctypes.util.find_library("c")
    assert malloc.keep_freed_memory() is True


def test_the_environment_leaves_glibcs_own_settings(monkeypatch):
    monkeypatch.setenv("JAXATTN_GLIBC_MALLOC", "default")
    assert malloc.keep_freed_memory() is False


def test_every_command_applies_it(monkeypatch, capsys):
    from jaxattn.cli import commands

    calls = []
    monkeypatch.setattr(commands, "keep_freed_memory", lambda: calls.append(True))
    assert commands.main(["data", "list"]) == 0
    assert calls == [True] and "sst2" in capsys.readouterr().out
