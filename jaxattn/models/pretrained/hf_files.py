"""Reading and writing BERT models in Hugging Face's folder layout, and tokenizing with them.

A folder holds ``config.json``, ``model.safetensors`` and the tokenizer (``tokenizer.json``, or
``vocab.txt`` with ``tokenizer_config.json``), as ``save_pretrained`` and sentence-transformers
write them. :func:`load_folder` gives a :class:`~jaxattn.models.pretrained.bert.Bert`, its params
and the tokenizer; :func:`write_folder` writes params back in the same layout (a round trip is
exact). Weights are read with ``safetensors`` into numpy (no torch); tensor names may carry the
``bert.`` prefix of HF's task models or be bare, as sentence-transformers saves them. PyTorch's
``Linear`` weights ``(out, in)`` become kernels ``(in, out)``.

Only what :class:`Bert` computes is accepted: ``model_type`` bert (or a ``Bert*`` architecture),
``hidden_act`` gelu (the exact erf form), absolute position embeddings, an encoder (not a
decoder). Every problem is one line naming the file and the key or tensor
(:class:`PretrainedError`). Tensors of the pre-training heads (``cls.*``) and the
``position_ids`` buffer are known and skipped; any other tensor the model has no place for is an
error, as is a missing one.

The tokenizer is read by :mod:`jaxattn.models.pretrained.hf_tokenizer`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from jaxattn.core.errors import PretrainedError, read_json_object
from jaxattn.models.pretrained.bert import Bert, BertConfig
from jaxattn.models.pretrained.hf_tokenizer import TOKENIZER_FILE, VOCAB_FILE, read_tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# Tensors HF checkpoints may hold that the encoder knowingly has no use for.
_SKIPPED_PREFIXES = ("cls.predictions.", "cls.seq_relationship.")
_SKIPPED_NAMES = ("embeddings.position_ids", "embeddings.token_type_ids")

# Per-layer tensors: HF name -> (params key in "layers", field, is a Linear weight).
_LAYER_TENSORS = {
    "attention.self.query.weight": ("query", "kernel", True),
    "attention.self.query.bias": ("query", "bias", False),
    "attention.self.key.weight": ("key", "kernel", True),
    "attention.self.key.bias": ("key", "bias", False),
    "attention.self.value.weight": ("value", "kernel", True),
    "attention.self.value.bias": ("value", "bias", False),
    "attention.output.dense.weight": ("attn_out", "kernel", True),
    "attention.output.dense.bias": ("attn_out", "bias", False),
    "attention.output.LayerNorm.weight": ("attn_ln", "scale", False),
    "attention.output.LayerNorm.bias": ("attn_ln", "bias", False),
    "intermediate.dense.weight": ("intermediate", "kernel", True),
    "intermediate.dense.bias": ("intermediate", "bias", False),
    "output.dense.weight": ("output", "kernel", True),
    "output.dense.bias": ("output", "bias", False),
    "output.LayerNorm.weight": ("out_ln", "scale", False),
    "output.LayerNorm.bias": ("out_ln", "bias", False),
}

# Tensors outside the layers: HF name (without prefix) -> (params path, is a Linear weight).
_EMBEDDING_TENSORS = {
    "embeddings.word_embeddings.weight": (("embeddings", "word"), False),
    "embeddings.position_embeddings.weight": (("embeddings", "position"), False),
    "embeddings.token_type_embeddings.weight": (("embeddings", "token_type"), False),
    "embeddings.LayerNorm.weight": (("embeddings", "ln", "scale"), False),
    "embeddings.LayerNorm.bias": (("embeddings", "ln", "bias"), False),
}
_POOLER_TENSORS = {
    "pooler.dense.weight": (("pooler", "kernel"), True),
    "pooler.dense.bias": (("pooler", "bias"), False),
}
# The task head of BertForSequenceClassification sits beside the "bert." prefix.
_CLASSIFIER_TENSORS = {
    "classifier.weight": (("classifier", "kernel"), True),
    "classifier.bias": (("classifier", "bias"), False),
}


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A loaded folder: the model, its params and its tokenizer (None when the folder has none)."""

    model: Bert
    params: dict
    tokenizer: Any


# ---------------------------------------------------------------- config.json


def read_config(folder: str | Path) -> BertConfig:
    """The :class:`BertConfig` of ``folder/config.json`` (``num_labels`` from ``id2label``, 0
    without it), refusing what :class:`Bert` does not compute with one line naming the key."""
    path = Path(folder) / CONFIG_FILE
    raw = read_json_object(path, error=PretrainedError, what="model config")

    model_type = raw.get("model_type")
    architectures = raw.get("architectures") or []
    if model_type is not None and model_type != "bert":
        raise PretrainedError(f"{path}: model_type {model_type!r} is not supported (only bert)")
    if model_type is None and not any(str(a).startswith("Bert") for a in architectures):
        raise PretrainedError(
            f"{path}: architectures {architectures!r} has no Bert* model (and no model_type)"
        )
    for key, allowed, default in (
        ("hidden_act", ("gelu",), "gelu"),
        ("position_embedding_type", ("absolute",), "absolute"),
        ("is_decoder", (False,), False),
        ("add_cross_attention", (False,), False),
    ):
        value = raw.get(key, default)
        if value not in allowed:
            raise PretrainedError(f"{path}: {key} {value!r} is not supported (only {allowed[0]!r})")

    def integer(key: str, default: int | None = None) -> int:
        value = raw.get(key, default)
        if value is None:
            raise PretrainedError(f"{path}: {key} missing")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PretrainedError(f"{path}: {key} {value!r} is not a non-negative integer")
        return value

    eps = raw.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise PretrainedError(f"{path}: layer_norm_eps {eps!r} is not a positive number")
    id2label = raw.get("id2label")
    if id2label is not None and not isinstance(id2label, dict):
        raise PretrainedError(f"{path}: id2label is not a JSON object")
    hidden, heads = integer("hidden_size"), integer("num_attention_heads")
    if heads == 0 or hidden % heads:
        raise PretrainedError(
            f"{path}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
        )
    rates = {}
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        rate = raw.get(key, 0.1)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise PretrainedError(f"{path}: {key} {rate!r} is not a number in [0, 1)")
        rates[key] = float(rate)
    return BertConfig(
        hidden_dropout=rates["hidden_dropout_prob"],
        attention_dropout=rates["attention_probs_dropout_prob"],
        vocab_size=integer("vocab_size"),
        hidden_size=hidden,
        num_layers=integer("num_hidden_layers"),
        num_heads=heads,
        intermediate_size=integer("intermediate_size"),
        max_position_embeddings=integer("max_position_embeddings", 512),
        type_vocab_size=integer("type_vocab_size", 2),
        layer_norm_eps=float(eps),
        pad_token_id=integer("pad_token_id", 0),
        num_labels=len(id2label) if id2label else 0,
    )


def config_json(config: BertConfig, *, classifier: bool) -> dict:
    """The ``config.json`` contents HF's ``BertConfig`` reads as ``config``."""
    out: dict[str, Any] = {
        "architectures": ["BertForSequenceClassification" if classifier else "BertModel"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu",
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": config.hidden_dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "initializer_range": 0.02,
    }
    if classifier:
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(config.num_labels)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(config.num_labels)}
    return out


# ---------------------------------------------------------------- model.safetensors


def _expected_tensors(config: BertConfig) -> dict[str, tuple]:
    """HF tensor name (bare) -> (params path, layer or None, transposed, HF shape)."""
    E, inter, L = config.hidden_size, config.intermediate_size, config.num_layers
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, E),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, E),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, E),
        "intermediate.dense.weight": (inter, E),
        "intermediate.dense.bias": (inter,),
        "output.dense.weight": (E, inter),
        "pooler.dense.weight": (E, E),
        "classifier.weight": (config.num_labels, E),
        "classifier.bias": (config.num_labels,),
    }
    out = {}
    for name, (path, linear) in {
        **_EMBEDDING_TENSORS,
        **_POOLER_TENSORS,
        **_CLASSIFIER_TENSORS,
    }.items():
        out[name] = (path, None, linear, shapes.get(name, (E, E) if linear else (E,)))
    for i in range(L):
        for suffix, (key, field, linear) in _LAYER_TENSORS.items():
            shape = shapes.get(suffix, (E, E) if linear else (E,))
            out[f"encoder.layer.{i}.{suffix}"] = (("layers", key, field), i, linear, shape)
    return out


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:

    if not path.is_file():
        raise PretrainedError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PretrainedError(f"{path}: cannot read safetensors ({detail})") from None


def read_params(folder: str | Path, config: BertConfig) -> tuple[dict, BertConfig]:
    """The params of ``folder/model.safetensors`` for a model of ``config``, and ``config`` with
    ``num_labels`` set to the classifier's outputs (0 without a classifier).

    The pooler and the classifier are optional (each all or nothing); every other tensor of
    the encoder must be there with the shape ``config`` gives it.
    """
    path = Path(folder) / WEIGHTS_FILE
    tensors = _read_safetensors(path)
    prefix = "bert." if any(name.startswith("bert.") for name in tensors) else ""

    def bare(name: str) -> str | None:
        if name in _CLASSIFIER_TENSORS:
            return name
        if name.startswith(prefix):
            return name[len(prefix) :]
        return None

    named: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        key = bare(name)
        if key is not None and (key in _SKIPPED_NAMES or key.startswith(_SKIPPED_PREFIXES)):
            continue
        if name.startswith(_SKIPPED_PREFIXES):
            continue
        if key is None:
            raise PretrainedError(f"{path}: tensor {name} is not part of a BERT encoder")
        named[key] = value

    if "classifier.weight" in named:
        rows = named["classifier.weight"].shape[0]
        if config.num_labels and rows != config.num_labels:
            raise PretrainedError(
                f"{path}: tensor classifier.weight has {rows} rows but config.json's id2label "
                f"has {config.num_labels} labels"
            )
        config = dataclasses.replace(config, num_labels=rows)
    else:
        config = dataclasses.replace(config, num_labels=0)
    expected = _expected_tensors(config)
    optional = {
        "pooler": set(_POOLER_TENSORS),
        "classifier": set(_CLASSIFIER_TENSORS),
    }
    present_groups = {g for g, names in optional.items() if names & set(named)}
    for name in named:
        if name not in expected:
            raise PretrainedError(f"{path}: tensor {prefix}{name} is not part of a BERT encoder")

    staged: dict[tuple, dict[int | None, np.ndarray]] = {}
    for name, (params_path, layer, linear, shape) in expected.items():
        group = params_path[0] if params_path[0] in optional else None
        if group is not None and group not in present_groups:
            continue
        shown = name if name in _CLASSIFIER_TENSORS else prefix + name
        if name not in named:
            raise PretrainedError(f"{path}: tensor {shown} missing")
        value = named[name]
        if tuple(value.shape) != shape:
            raise PretrainedError(
                f"{path}: tensor {shown} has shape {tuple(value.shape)}, config.json gives {shape}"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise PretrainedError(f"{path}: tensor {shown} has dtype {value.dtype}, not a float")
        value = value.astype(np.float32)
        staged.setdefault(params_path, {})[layer] = value.T if linear else value

    params: dict = {}
    for params_path, values in staged.items():
        if None in values:
            leaf = values[None]
        else:
            leaf = np.stack([values[i] for i in range(config.num_layers)])
        node = params
        for key in params_path[:-1]:
            node = node.setdefault(key, {})
        node[params_path[-1]] = jnp.asarray(np.ascontiguousarray(leaf))
    if config.num_labels and "pooler" not in params:
        raise PretrainedError(f"{path}: tensor {prefix}pooler.dense.weight missing")
    return params, config


def write_folder(
    folder: str | Path, config: BertConfig, params: dict, tokenizer: Any = None
) -> Path:
    """Writes ``params`` as ``model.safetensors`` and ``config.json`` (and the tokenizer as
    ``tokenizer.json`` when given) in the layout HF's ``from_pretrained`` reads: bare names for
    an encoder, ``bert.``-prefixed names plus ``classifier.*`` when ``params`` has a classifier
    (``BertForSequenceClassification``). Returns the folder."""

    folder = Path(folder)
    if config.pre_ln:
        raise PretrainedError(f"{folder}: a pre-LN model has no Hugging Face BERT layout")
    classifier = "classifier" in params
    if classifier:
        config = dataclasses.replace(config, num_labels=int(params["classifier"]["bias"].shape[0]))
    prefix = "bert." if classifier else ""
    tensors: dict[str, np.ndarray] = {}
    for name, (params_path, layer, linear, _shape) in _expected_tensors(config).items():
        if params_path[0] in ("pooler", "classifier") and params_path[0] not in params:
            continue
        leaf = params
        for key in params_path:
            leaf = leaf[key]
        value = np.asarray(leaf, dtype=np.float32)
        if layer is not None:
            value = value[layer]
        value = np.ascontiguousarray(value.T if linear else value)
        tensors[name if name in _CLASSIFIER_TENSORS else prefix + name] = value
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    text = json.dumps(config_json(config, classifier=classifier), indent=2, sort_keys=True)
    (folder / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save(str(folder / TOKENIZER_FILE))
    return folder


# ---------------------------------------------------------------- the whole folder


def load_folder(folder: str | Path, *, tokenizer: bool = True) -> Pretrained:
    """The model, params and (when ``tokenizer`` and the folder has one) tokenizer of a HF BERT
    folder; ``model.config.num_labels`` counts the classifier's outputs (0 without one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PretrainedError(f"{folder}: model folder not found")
    config = read_config(folder)
    params, config = read_params(folder, config)
    tok = None
    if tokenizer and ((folder / TOKENIZER_FILE).is_file() or (folder / VOCAB_FILE).is_file()):
        tok = read_tokenizer(folder)
    return Pretrained(model=Bert(config), params=params, tokenizer=tok)
