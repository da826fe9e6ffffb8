"""A J&W vocabulary pickle is read without running anything a file names: only containers,
latin-1 bytes, numpy's array / dtype / scalar rebuilders and their ``Vectorizer`` (as inert
data) are admitted; every other global is refused before it is imported or called."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxattn.interop.jw_layout import CheckpointError
from jaxattn.interop.torch_runs import read_vocab

WORDS = ["<0>", "<UNK>", "<SOS>", "<EOS>", "café", "good"]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(module: str, name: str, *args: str) -> bytes:
    """A protocol-0 pickle of ``module.name(*args)`` (string arguments), ending in STOP."""
    body = b"".join(b"V" + a.encode() + b"\n" for a in args)
    return _global(module, name) + b"(" + body + b"tR"


class _System:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


HOSTILE = {
    # the 34-byte finding: importing numpy.f2py.__main__ runs f2py's command line
    "numpy-module-with-side-effects": _global("numpy.f2py.__main__", "ndarray") + b".",
    "reduce-os-system": pickle.dumps({"idx2word": _System()}, protocol=2),
    "import-side-effect": _global("this", "s") + b".",
    "builtins-eval": _call("builtins", "eval", "__import__('os').system('touch pwned')") + b".",
    "nested-reduce": b"(dp0\nVidx2word\np1\n(l" + _call("builtins", "exec", "open('pwned','w')")
    + b"atR" + b".",
    "huge-bytes": _global("builtins", "bytes") + b"(I1000000000000\ntR.",
    "ndarray-called-directly": _global("numpy", "ndarray") + b"((I1000000000\ntttR.",
    "codecs-other-encoding": _call("_codecs", "encode", "x", "zlib_codec") + b".",
    "getattr-chain": _call("builtins", "getattr", "os", "system") + b".",
    "persistent-id": b"Pabc\n.",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pickles_are_refused_and_run_nothing(tmp_path, name):
    """Each runs in a fresh interpreter so that what it imported can be seen."""
    path = tmp_path / "vec.p"
    path.write_bytes(HOSTILE[name])
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jaxattn.interop.jw_layout import CheckpointError\n"
        "from jaxattn.interop.torch_runs import read_vocab\n"
        "before = set(sys.modules)\n"
        "try:\n"
        f"    read_vocab(Path({str(path)!r}))\n"
        "    print('READ')\n"
        "except CheckpointError as err:\n"
        "    print('ERR', err)\n"
        "print('NEW', sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"ERR {path}:"), done.stdout
    assert len(lines) == 2 and lines[1] == "NEW []", done.stdout  # nothing imported
    assert not (tmp_path / "pwned").exists()


def test_the_refusal_names_the_global(tmp_path):
    path = tmp_path / "vec.p"
    path.write_bytes(HOSTILE["numpy-module-with-side-effects"])
    with pytest.raises(CheckpointError, match=r"vec.p: the pickle names "
                                              r"numpy.f2py.__main__.ndarray, which a J&W"):
        read_vocab(path)


def _vectorizer_pickle(protocol: int, module: str = "Transparency.preprocess.vectorizer") -> bytes:
    """A pickled ``Vectorizer`` as J&W's preprocessing writes one (sklearn's vocabulary_ maps
    words to numpy ints), with its class's module absent when read."""
    import types

    mod = types.ModuleType(module)

    class Vectorizer:
        pass

    Vectorizer.__module__, Vectorizer.__qualname__ = module, "Vectorizer"
    mod.Vectorizer = Vectorizer
    parts = module.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    for name in names[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[module] = mod
    try:
        vec = Vectorizer()
        vec.word2idx = {w: np.int64(i) for i, w in enumerate(WORDS)}
        vec.idx2word = {i: w for i, w in enumerate(WORDS)}
        vec.embeddings = np.arange(12, dtype=np.float32).reshape(6, 2)
        vec.min_df = 5
        return pickle.dumps(vec, protocol=protocol)
    finally:
        for name in names:
            del sys.modules[name]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("module", ["Transparency.preprocess.vectorizer", "vectorizer"])
def test_real_vectorizer_pickles_of_every_protocol_read(tmp_path, protocol, module):
    path = tmp_path / "vec.p"
    path.write_bytes(_vectorizer_pickle(protocol, module))
    assert read_vocab(path) == WORDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000),
                                                            st.integers(0, 255)), max_size=4))
def test_damaged_pickles_give_a_checkpoint_error_or_the_words(tmp_path_factory, cut, flips):
    """Truncated and byte-flipped variants of a real pickle: the words, or one CheckpointError
    naming the file; never another exception, never a run of code."""
    raw = bytearray(_vectorizer_pickle(2))
    for at, value in flips:
        raw[at % len(raw)] = value
    raw = bytes(raw[: max(1, cut % (len(raw) + 1))])
    path = tmp_path_factory.mktemp("p") / "vec.p"
    path.write_bytes(raw)
    try:
        words = read_vocab(path)
    except CheckpointError as err:
        assert str(err).startswith(f"{path}:") and "\n" not in str(err)
    else:
        assert all(isinstance(w, str) for w in words)
