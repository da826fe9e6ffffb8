"""Runs of pretrained encoders (``model.encoder = "bert"``): built from a Hugging Face folder's
architecture (``config.json``), weights and tokenizer, not from the flat ``model.*`` sizes.

A run directory of a pretrained encoder holds, beside what every run holds (``config.toml``,
``data.json``, ``params.msgpack``, ``metrics.json``), ``pretrained/config.json`` (the encoder's
architecture, HF's layout) and ``pretrained/tokenizer.json`` (its WordPiece tokenizer) in place
of ``vocab.json``; the weights are in ``params.msgpack`` (``{"bert": ..., "head": ...}``), so the
run no longer needs the folder it came from.

``import_hf`` writes such a run with an unfitted head (``metrics.json`` says ``unfitted``, with
no epochs): ``jaxattn train --config RUN/config.toml --out RUN`` fine-tunes it from those
params, and ``load_run`` / ``analyze`` read it as it is. ``export_hf`` writes a run back as a HF
folder (:func:`~jaxattn.models.pretrained.hf_files.write_folder`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
from flax.serialization import msgpack_restore
from safetensors.numpy import save_file

from jaxattn.config import Config
from jaxattn.core.errors import RunError
from jaxattn.data.tokenizers import WordPieceTokenizer
from jaxattn.models.config import MINILM, PRETRAINED_ENCODERS
from jaxattn.models.pretrained import (
    Bert,
    BertConfig,
    PretrainedError,
    bert_classifier,
    load_folder,
    minilm_folder,
    read_config,
    read_tokenizer,
    write_folder,
)
from jaxattn.models.pretrained.hf_files import CONFIG_FILE, config_json
from jaxattn.models.pretrained.hf_tokenizer import TOKENIZER_FILE
from jaxattn.runtime.files import write_atomic

RUN_FOLDER = "pretrained"  # RUN/pretrained/{config.json, tokenizer.json}
HEAD_FILE = "jaxattn_head.safetensors"  # the attention head of an exported run


def is_pretrained(cfg: Config) -> bool:
    """Whether ``cfg`` names a pretrained encoder (:data:`PRETRAINED_ENCODERS`)."""
    return cfg.model.encoder in PRETRAINED_ENCODERS


def pretrained_folder(name: str) -> Path:
    """The folder ``model.pretrained`` names: ``"minilm"`` is the packaged all-MiniLM-L6-v2."""
    if name == MINILM:
        return minilm_folder()
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise PretrainedError(f"model.pretrained: {folder}: model folder not found")
    return folder


@dataclasses.dataclass(frozen=True)
class Source:
    """What a pretrained run is built from: the architecture, the encoder's params (None when
    they come from the run's own ``params.msgpack``) and the tokenizer."""

    architecture: BertConfig
    params: dict | None
    tokenizer: WordPieceTokenizer


def load_source(cfg: Config) -> Source:
    """The folder ``cfg.model.pretrained`` names, loaded (one-line errors naming the file)."""
    folder = pretrained_folder(cfg.model.pretrained)
    loaded = load_folder(folder)
    if loaded.tokenizer is None:
        raise PretrainedError(f"{folder}: no {TOKENIZER_FILE} and no vocab.txt")
    architecture = dataclasses.replace(loaded.model.config, num_labels=0)
    return Source(architecture, loaded.params, WordPieceTokenizer(loaded.tokenizer,
                                                                  cfg.model.max_pieces))


def run_source(run_dir: Path, cfg: Config) -> Source:
    """The architecture and tokenizer a pretrained run directory holds (``pretrained/``)."""
    folder = Path(run_dir) / RUN_FOLDER
    for name in (CONFIG_FILE, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise RunError(f"{run_dir}: not a pretrained run ({RUN_FOLDER}/{name} missing)")
    architecture = dataclasses.replace(read_config(folder), num_labels=0)
    return Source(architecture, None,
                  WordPieceTokenizer(read_tokenizer(folder), cfg.model.max_pieces))


def write_source(out: Path, source: Source) -> None:
    """``out/pretrained/config.json`` and ``tokenizer.json``."""
    folder = Path(out) / RUN_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config_json(source.architecture, classifier=False), indent=2, sort_keys=True)
    write_atomic(folder / CONFIG_FILE, text + "\n")
    write_atomic(folder / TOKENIZER_FILE, source.tokenizer.tokenizer.to_str())


def bert_model(cfg: Config, architecture: BertConfig, info: dict):
    """The classifier ``cfg.model.head`` names over a BERT of ``architecture``."""
    return bert_classifier(Bert(architecture), cfg.model.head, info["task"],
                           len(info["label_names"]))


def initial_params(model, cfg: Config, encoder_params: dict) -> dict:
    """A fresh head (``train.seed``) on the pretrained encoder: a folder's classifier is left out
    (the head is fitted to this task), its pooler kept for the cls head (fresh when the folder
    has none) and left out for the attention head."""
    fresh = model.init(jax.random.key(cfg.train.seed))
    bert = {k: v for k, v in encoder_params.items() if k in fresh["bert"]}
    for key in fresh["bert"]:
        bert.setdefault(key, fresh["bert"][key])
    return {"bert": bert, "head": fresh["head"]}


def one_logit_cls_head(path: Path, template: dict) -> bool:
    """Whether ``path`` (a run's ``params.msgpack``) holds a binary cls head of one sigmoid logit
    where ``template`` has two (runs written before the head had HF's two logits)."""
    classifier = template.get("head", {}).get("classifier")
    if classifier is None or classifier["kernel"].shape[-1] != 2:
        return False
    try:
        raw = msgpack_restore(Path(path).read_bytes())
        return raw["head"]["classifier"]["kernel"].shape[-1] == 1
    except Exception:  # unreadable or another layout: read_params reports it in one line
        return False


def narrowed(template: dict) -> dict:
    """``template`` with a one-logit classifier (shapes only)."""
    kernel = template["head"]["classifier"]["kernel"]
    one = {"kernel": jax.ShapeDtypeStruct(kernel.shape[:-1] + (1,), kernel.dtype),
           "bias": jax.ShapeDtypeStruct((1,), kernel.dtype)}
    return {**template, "head": {**template["head"], "classifier": one}}


def widen_one_logit(params: dict) -> dict:
    """A one-logit binary classifier ``z`` as the two logits ``[0, z]``: the softmax of those is
    the sigmoid's ``[1 - p, p]``, so every output and analysis is unchanged."""
    c = params["head"]["classifier"]
    kernel, bias = np.asarray(c["kernel"]), np.asarray(c["bias"])
    two = {"kernel": np.concatenate([np.zeros_like(kernel), kernel], axis=-1),
           "bias": np.concatenate([np.zeros_like(bias), bias])}
    return {**params, "head": {**params["head"], "classifier": two}}


def export_hf(run, out: str | Path) -> Path:
    """Writes run ``run`` (a :class:`~jaxattn.runs.run.Run` of a pretrained encoder) as a HF
    folder: the encoder and tokenizer; for the cls head also the pooler and classifier as
    ``BertForSequenceClassification``; for the attention head, which
    has no HF layout, the head's tensors in ``jaxattn_head.safetensors``."""
    if not is_pretrained(run.config):
        raise RunError(f"{run.path}: model.encoder is {run.config.model.encoder!r}; export-hf "
                       f"writes a pretrained encoder ({', '.join(PRETRAINED_ENCODERS)})")
    out = Path(out)
    source = run_source(run.path, run.config)
    params = dict(run.params["bert"])
    head = run.params["head"]
    if run.config.model.head == "cls":
        params["classifier"] = jax.tree_util.tree_map(np.asarray, head["classifier"])
    write_folder(out, source.architecture, params, source.tokenizer.tokenizer)
    if run.config.model.head != "cls":
        flat = {
            "/".join(str(getattr(k, "key", k)) for k in path): np.ascontiguousarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(
                jax.tree_util.tree_map(np.asarray, head))[0]
        }
        save_file(flat, str(out / HEAD_FILE))
    return out
