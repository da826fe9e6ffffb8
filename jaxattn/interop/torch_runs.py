"""``jaxattn import-torch`` / ``export-torch``: J&W PyTorch checkpoints <-> jaxattn run directories.

A J&W model folder (what their ``Model.save_values`` writes) holds ``enc.th`` and ``dec.th``
(``torch.save`` of the two ``state_dict``s, see :mod:`jaxattn.interop.jw_layout`) and
``config.json``; its vocabulary is the pickled ``Vectorizer`` of their preprocessing (``vec.p``,
``idx2word``) or, here, a JSON list / object or a text file of one word per line (UTF-8, lines
ending in LF or CRLF, a leading byte-order mark allowed), in id order.
Ids 0-3 are PAD, UNK, SOS, EOS in both codes, so ids carry over unchanged.

Import writes an ordinary finished run directory (``config.toml``, ``vocab.json``, ``data.json``,
``params.msgpack``, ``metrics.json`` with the imported model's dev and test scores), on which
``jaxattn analyze`` / ``wp`` run as on a trained one. Export writes ``enc.th``, ``dec.th``,
``config.json`` in the J&W layout and ``vocab.json``.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import pickle
from pathlib import Path

import jax
import numpy as np

from jaxattn.config import Config
from jaxattn.core.metrics import classification_scores
from jaxattn.data.prepare import prepare
from jaxattn.data.vocab import Vocab
from jaxattn.interop.jw_layout import CheckpointError, from_params, sizes, to_params
from jaxattn.runs.run import is_finished_run, load_run, model_for, write_run
from jaxattn.runtime.files import write_atomic, write_json
from jaxattn.training.trainer import first_batch, predict

JW_SPECIALS = ("<0>", "<UNK>", "<SOS>", "<EOS>")  # their Vectorizer's names for ids 0-3


def _torch():
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            "PyTorch is not installed; install it to read or write .th files "
            "(pip install 'jaxattn[torch]')"
        ) from None
    return torch


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A ``torch.save``-d state dict as name -> numpy array (tensors only, loaded on the CPU)."""
    torch = _torch()
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a J&W model folder holds enc.th and dec.th")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle / zip errors of a damaged or foreign file
        raise CheckpointError(f"{path}: not a PyTorch state dict ({type(err).__name__})") from None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: holds a {type(sd).__name__}, not a state dict")
    out = {}
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: key {key} is a {type(value).__name__}, not a tensor")
        if value.layout != torch.strided:
            raise CheckpointError(
                f"{path}: key {key} is a sparse tensor ({value.layout}); J&W checkpoints hold "
                "dense tensors: save it with .to_dense()"
            )
        if not (value.dtype.is_floating_point or value.dtype in (torch.int64, torch.int32)):
            raise CheckpointError(f"{path}: key {key} has dtype {value.dtype}, not a number type")
        if value.dtype in (torch.bfloat16, torch.float16):
            # numpy has no bfloat16; float32 holds every half-precision value exactly.
            value = value.float()
        out[key] = value.detach().cpu().numpy()
    return out


class _Stub:
    """Stands in for the one class a J&W vocabulary pickle holds (their ``Vectorizer``, and the
    sklearn ``CountVectorizer`` it may keep): it keeps the attributes and runs no code."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)


class _NdarrayName:
    """What a pickle's ``numpy.ndarray`` becomes: only :func:`_empty_array` accepts it, so a
    file cannot call ``ndarray(shape)`` to reserve memory of a size it names."""


def _empty_array(cls, shape, dtype):
    """numpy's ``_reconstruct`` as pickles use it: the empty array that ``__setstate__`` then
    fills (and checks against the data it is given)."""
    if cls is not _NdarrayName or tuple(shape) != (0,):
        raise _Refused("numpy's _reconstruct other than for an array's pickle")
    return np.ndarray.__reduce__(np.zeros(1))[0](np.ndarray, (0,), dtype)


def _numpy_rebuilders() -> dict[str, object]:
    """The functions a pickled ndarray / dtype / scalar names, taken from the numpy already
    imported (so no module named in a file is ever imported to find them)."""
    return {
        "_reconstruct": _empty_array,
        "scalar": np.float64(0).__reduce__()[0],
        "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
        "ndarray": _NdarrayName,
        "dtype": np.dtype,
    }


_NUMPY_HOMES = {  # where numpy 1.x and 2.x pickles say each one lives
    "_reconstruct": ("numpy.core.multiarray", "numpy._core.multiarray"),
    "scalar": ("numpy.core.multiarray", "numpy._core.multiarray"),
    "_frombuffer": ("numpy.core.numeric", "numpy._core.numeric"),
    "ndarray": ("numpy",),
    "dtype": ("numpy",),
}
# Containers only: no builtin whose call could allocate without bound (bytes(10**12), range).
_CONTAINERS = {("builtins", t.__name__): t for t in (dict, list, set, frozenset, tuple)}
_CONTAINERS |= {("__builtin__", t.__name__): t for t in (set, frozenset)}  # protocol 0-2
_CONTAINERS |= {("collections", "OrderedDict"): collections.OrderedDict,
                ("collections", "defaultdict"): collections.defaultdict}
_STUBS = {("Vectorizer", "vectorizer"), ("CountVectorizer", "sklearn.feature_extraction.text"),
          ("CountVectorizer", "sklearn.feature_extraction._text")}


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocols 0-2 name as ``_codecs.encode`` to rebuild bytes, for latin-1 alone."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _plain_instance(cls, base=object, state=None):
    """``copyreg._reconstructor`` as protocols 0-1 use it for a plain class: here only for the
    stub classes, so it never calls a constructor a file names."""
    if not (isinstance(cls, type) and issubclass(cls, _Stub)) or base is not object or state:
        raise _Refused("copyreg._reconstructor other than for a Vectorizer")
    return cls()


def _admitted(module: str, name: str):
    """What a vocabulary pickle may name as ``module.name``, or None: containers, latin-1 bytes,
    numpy's array, dtype and scalar rebuilders, and J&W's ``Vectorizer`` (a data-only stub)."""
    if (module, name) in _CONTAINERS:
        return _CONTAINERS[module, name]
    if name == "_reconstructor" and module in ("copy_reg", "copyreg"):
        return _plain_instance
    if name == "object" and module in ("builtins", "__builtin__"):
        return object
    if (module, name) == ("_codecs", "encode"):
        return _latin1_bytes
    if module in _NUMPY_HOMES.get(name, ()):
        return _numpy_rebuilders()[name]
    # Their Vectorizer lives in preprocess/vectorizer.py, imported under one of several paths.
    if name == "Vectorizer" and module.rsplit(".", 1)[-1] == "vectorizer":
        return type(name, (_Stub,), {})
    if (name, module) in _STUBS:
        return type(name, (_Stub,), {})
    return None


class _VocabUnpickler(pickle.Unpickler):
    """Unpickles exactly what a J&W vocabulary holds (see :func:`_admitted`); any other global a
    file names is refused before anything is imported or called."""

    def find_class(self, module, name):
        found = _admitted(module, name)
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


class _Refused(Exception):
    pass


def _itos_from_mapping(mapping: dict, path: Path) -> list[str]:
    """id order from ``{word: id}`` or ``{id: word}``; the ids must be 0..V-1, each once."""

    def whole(x) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    def id_key(k) -> bool:  # JSON object keys are strings: "12"
        return whole(k) or (isinstance(k, str) and k.isascii() and k.isdigit())

    if mapping and all(whole(v) for v in mapping.values()):
        pairs = [(int(v), str(k)) for k, v in mapping.items()]
    elif mapping and all(id_key(k) and isinstance(v, str) for k, v in mapping.items()):
        pairs = [(int(k), v) for k, v in mapping.items()]
    else:
        bad = next(
            ((k, v) for k, v in mapping.items() if not whole(v) and not id_key(k)),
            next(iter(mapping.items()), None),
        )
        raise CheckpointError(
            f"{path}: expected word -> whole-number id or id -> word entries, got "
            f"{bad[0]!r}: {bad[1]!r}" if bad else f"{path}: the mapping is empty"
        )
    ids = sorted(i for i, _ in pairs)
    if ids != list(range(len(ids))):
        raise CheckpointError(f"{path}: ids are not 0..{len(ids) - 1}, each once")
    return [w for _, w in sorted(pairs)]


def read_vocab(path: Path) -> list[str]:
    """The words of a J&W vocabulary file in id order (see the module docstring for formats)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: vocabulary file missing")
    raw = path.read_bytes()
    if path.suffix in (".p", ".pkl", ".pickle"):
        try:
            obj = _VocabUnpickler(io.BytesIO(raw)).load()
        except _Refused as err:
            raise CheckpointError(f"{path}: the pickle names {err}, which a J&W vocabulary does "
                                  "not hold; refused without running it") from None
        except Exception as err:
            raise CheckpointError(f"{path}: not a pickled vocabulary ({type(err).__name__})") from None
        mapping = getattr(obj, "idx2word", None) or getattr(obj, "word2idx", None)
        if not isinstance(mapping, dict):
            raise CheckpointError(f"{path}: the pickle has no idx2word / word2idx mapping")
        itos = _itos_from_mapping(mapping, path)
    elif path.suffix == ".json":
        try:
            obj = json.loads(raw.decode("utf-8-sig"))
        except ValueError as err:
            raise CheckpointError(f"{path}: not JSON ({err})") from None
        if isinstance(obj, dict):
            itos = _itos_from_mapping(obj, path)
        elif isinstance(obj, list) and all(isinstance(w, str) for w in obj):
            itos = obj
        else:
            raise CheckpointError(f"{path}: expected a list of words or a word -> id object")
    else:
        try:
            text = raw.decode("utf-8-sig")  # a leading byte-order mark is dropped
        except UnicodeDecodeError as err:
            raise CheckpointError(
                f"{path}: not UTF-8 text (byte {err.start}); expected one word per line"
            ) from None
        # Lines end in \n or \r\n; words may hold any other character (no str.splitlines).
        itos = [line.removesuffix("\r") for line in text.split("\n")]
        while itos and not itos[-1]:  # the newline(s) ending the file
            itos.pop()
    if len(itos) < len(JW_SPECIALS):
        raise CheckpointError(f"{path}: {len(itos)} entries; ids 0-3 must be PAD, UNK, SOS, EOS")
    words = itos[len(JW_SPECIALS):]
    seen: set[str] = set()
    for i, word in enumerate(words, start=len(JW_SPECIALS)):
        if word in seen:
            raise CheckpointError(f"{path}: word {word!r} appears twice (again at id {i})")
        seen.add(word)
    return itos


def _leaf_check(params: dict, template, where: str) -> None:
    """The converted params have exactly the tree and shapes the config's model expects."""

    got = jax.tree_util.tree_flatten_with_path(params)[0]
    want = jax.tree_util.tree_flatten_with_path(template)[0]
    got_keys = {jax.tree_util.keystr(k): v.shape for k, v in got}
    for kp, leaf in want:
        key = jax.tree_util.keystr(kp)
        if got_keys.get(key) != leaf.shape:
            raise CheckpointError(
                f"{where}: {key} is {got_keys.get(key, 'missing')}, the model needs {leaf.shape}"
            )


def import_torch(checkpoint: Path, vocab_path: Path, cfg: Config, out: Path) -> dict:
    """Converts the J&W model folder ``checkpoint`` (enc.th, dec.th) with its vocabulary into
    the run directory ``out`` for the data set ``cfg.data``; returns its metrics."""

    if (out / "config.toml").exists():
        raise CheckpointError(f"--out {out}: already holds a run; choose another folder")
    enc = read_state_dict(checkpoint / "enc.th")
    dec = read_state_dict(checkpoint / "dec.th")
    try:
        found = sizes(enc, dec)
        params = to_params(enc, dec)
    except CheckpointError as err:
        raise CheckpointError(f"{checkpoint}/{err}") from None
    itos = read_vocab(vocab_path)
    if len(itos) != found["vocab_size"]:
        raise CheckpointError(
            f"{vocab_path}: {len(itos)} words, but {checkpoint}/enc.th embedding.weight has "
            f"{found['vocab_size']} rows; the vocabulary belongs to another model"
        )
    model_keys = ("encoder", "attention", "embed_dim", "hidden_size", "cnn_filters")
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, **{k: found[k] for k in model_keys if k in found})
    )
    prepared = prepare(cfg.data, vocab=Vocab(itos[len(JW_SPECIALS):]))
    info = prepared.info()
    if info["task"] in ("nli", "qa"):
        raise CheckpointError(f"data.name={cfg.data.name}: a {info['task']} data set; only "
                              "single-text (binary, multi-class) J&W models are imported")
    want_outputs = 1 if info["task"] == "binary" else len(info["label_names"])
    if found["num_outputs"] != want_outputs:
        raise CheckpointError(
            f"{checkpoint}/dec.th: key linear_1.weight has {found['num_outputs']} outputs, the "
            f"{info['task']} data set {cfg.data.name} needs {want_outputs}"
        )
    model = model_for(cfg, prepared, len(prepared.vocab))

    template = model.init(jax.random.key(0), first_batch(prepared.splits["train"]))
    _leaf_check(params, template, str(checkpoint))
    params = jax.tree_util.tree_map(jax.numpy.asarray, params)
    binary = info["task"] == "binary"
    scores = {name: classification_scores(predict(model, params, prepared.splits[name],
                                                  cfg.train.eval_batch_size, cfg.train.buckets),
                                          prepared.splits[name].labels, binary)
              for name in ("dev", "test")}
    metrics = {
        **scores,
        "best_epoch": 0,
        "selection": cfg.train.selection,
        "selection_metric": "auc" if binary else "accuracy",
        "epochs": [],
        "train_seconds": 0.0,
        "embeddings": {"name": "imported", "coverage": None, "dim": found["embed_dim"]},
        "attention": "learned",
        "model": {"encoder": found["encoder"], "attention": found["attention"]},
        "imported": {"checkpoint": str(checkpoint.resolve()), "vocab": str(vocab_path.resolve()),
                     "format": "jain_wallace"},
        "data": info,
    }
    write_run(out, cfg, prepared, params, metrics)
    assert is_finished_run(out)
    return metrics


def _jw_config(run) -> dict:
    """``config.json`` the way J&W's ``generate_*_config`` lays it out (model section)."""
    m, encoder = run.config.model, run.config.model.encoder
    enc = {"vocab_size": len(run.vocab), "embed_size": m.embed_dim}
    if encoder == "bilstm":
        enc.update(type="rnn", hidden_size=m.hidden_size)
    elif encoder == "cnn":
        enc.update(type="cnn", kernel_sizes=[1, 3, 5, 7], hidden_size=m.cnn_filters,
                   activation="relu")
    else:
        enc.update(type="average", projection=True, hidden_size=m.hidden_size, activation="tanh")
    binary = run.data_info["task"] == "binary"
    return {"model": {"encoder": enc, "decoder": {
        "attention": {"type": "tanh" if m.attention == "additive" else "dot"},
        "output_size": 1 if binary else len(run.data_info["label_names"])}},
        "exported_from": str(run.path.resolve())}


def _check_export_folder(run_dir: Path, out: Path) -> None:
    """Refuses an ``out`` that is the run, lies inside it or holds a run: exporting there would
    overwrite the run's own ``vocab.json`` (or another run's), which it then cannot be read by."""
    run_real, out_real = run_dir.resolve(), out.resolve()
    if out_real == run_real or run_real in out_real.parents:
        raise CheckpointError(
            f"--out {out}: is (inside) the run {run_dir} it exports, whose vocab.json it would "
            "overwrite; choose a folder outside the run"
        )
    if (out / "config.toml").exists():
        raise CheckpointError(
            f"--out {out}: holds a run (config.toml), whose vocab.json the export would "
            "overwrite; choose another folder"
        )


def export_torch(run_dir: Path, out: Path) -> Path:
    """Writes the run ``run_dir`` as a J&W model folder ``out`` (enc.th, dec.th, config.json,
    vocab.json with J&W's names for ids 0-3); returns ``out``."""

    torch = _torch()
    _check_export_folder(Path(run_dir), Path(out))
    run = load_run(run_dir)
    if run.data_info["task"] in ("nli", "qa"):
        raise CheckpointError(f"{run_dir}: a {run.data_info['task']} model; only single-text "
                              "models have the J&W layout")
    enc, dec = from_params(run.params, run.config.model.encoder)
    if run.config.model.attention not in ("additive", "dot"):
        raise CheckpointError(f"{run_dir}: attention {run.config.model.attention} has no J&W twin")
    out.mkdir(parents=True, exist_ok=True)
    for name, sd in (("enc.th", enc), ("dec.th", dec)):
        buf = io.BytesIO()
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, buf)
        write_atomic(out / name, buf.getvalue())
    write_json(out / "config.json", _jw_config(run))
    write_atomic(out / "vocab.json", json.dumps(list(JW_SPECIALS) + run.vocab.itos[4:],
                                                ensure_ascii=False))
    return out
