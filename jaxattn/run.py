"""A run directory: what ``jaxattn train`` writes and every analysis reads back.

    DIR/config.toml        the resolved config
    DIR/vocab.json         the vocabulary (id order)
    DIR/data.json          data set name, sizes after filtering, filters, source and caveats
    DIR/checkpoint.msgpack training state, rewritten atomically after every epoch (resume point)
    DIR/params.msgpack     the selected parameters
    DIR/metrics.json       test/dev scores of the selected epoch, per-epoch history, timings

Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file, and a finished stage is not recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from jaxattn.config import Config, ConfigError, dump_config, load_config
from jaxattn.data.batching import placeholder_batch
from jaxattn.data.embeddings import pretrained_table
from jaxattn.data.prepare import Prepared, prepare
from jaxattn.data.vocab import Vocab
from jaxattn.models.model import Model, Params, build_model
from jaxattn.train import AttentionSource, TrainState, first_batch, make_optimizer, train


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Writes ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def model_for(cfg: Config, prepared_or_info: Prepared | dict, vocab_size: int) -> Model:
    info = prepared_or_info.info() if isinstance(prepared_or_info, Prepared) else prepared_or_info
    return build_model(
        vocab_size=vocab_size,
        task=info["task"],
        num_classes=len(info["label_names"]),
        encoder=cfg.model.encoder,
        attention=cfg.model.attention,
        embed_dim=cfg.model.embed_dim,
        hidden_size=cfg.model.hidden_size,
        cnn_filters=cfg.model.cnn_filters,
        layers=cfg.model.layers,
        heads=cfg.model.heads,
        width=cfg.model.width,
        ff_size=cfg.model.ff_size,
        dropout=cfg.model.dropout,
        max_positions=cfg.model.max_positions,
    )


@dataclasses.dataclass
class Run:
    """A trained model read back from its directory."""

    path: Path
    config: Config
    vocab: Vocab
    data_info: dict
    model: Model
    params: Params
    metrics: dict

    def prepare_data(self) -> Prepared:
        """The run's data set, filtered and encoded with the run's own vocabulary."""
        return prepare(self.config.data, vocab=self.vocab)


def load_run(path: str | Path) -> Run:
    """Reads a finished run directory."""
    path = Path(path)
    for name in ("config.toml", "vocab.json", "data.json", "params.msgpack", "metrics.json"):
        if not (path / name).exists():
            raise FileNotFoundError(
                f"{path}: not a finished run ({name} missing); run `jaxattn train` first"
            )
    cfg = load_config(path / "config.toml")
    vocab = Vocab.load(path / "vocab.json")
    info = json.loads((path / "data.json").read_text())
    model = model_for(cfg, info, len(vocab))
    template = _init_params(model, cfg, vocab, info, prepared=None)
    params = serialization.from_bytes(template, (path / "params.msgpack").read_bytes())
    metrics = json.loads((path / "metrics.json").read_text())
    return Run(path, cfg, vocab, info, model, params, metrics)


def _init_params(
    model: Model, cfg: Config, vocab: Vocab, info: dict, prepared: Prepared | None
) -> Params:
    """Fresh parameters (shapes from a dummy batch when no data is at hand)."""
    if prepared is not None:
        batch = first_batch(prepared.splits["train"])
    else:
        batch = placeholder_batch(info["task"], len(info["label_names"]))
    return model.init(jax.random.key(cfg.train.seed), batch)


def initial_params(cfg: Config, model: Model, prepared: Prepared) -> tuple[Params, dict]:
    """Fresh parameters for ``cfg`` (``train.seed``; pretrained embeddings if configured) and a
    note on the embeddings used."""
    params = _init_params(model, cfg, prepared.vocab, prepared.info(), prepared)
    embeddings = {"name": cfg.data.embeddings, "coverage": None, "dim": cfg.model.embed_dim}
    if cfg.data.embeddings != "random":
        table, coverage = pretrained_table(prepared.vocab, cfg.data.embeddings, cfg.train.seed)
        params = dict(params)
        params["embedder"] = {"embedding": jax.numpy.asarray(table)}
        embeddings["coverage"] = coverage
    return params, embeddings


def _imposed_source(cfg: Config, prepared: Prepared) -> tuple[AttentionSource, Params | None]:
    if cfg.train.attention != "imposed":
        return AttentionSource(cfg.train.attention), None
    src = load_run(cfg.train.imposed_run)
    if src.vocab.itos != prepared.vocab.itos:
        raise ConfigError(
            f"train.imposed_run={cfg.train.imposed_run}: its vocabulary differs from this run's; "
            "imposed attention needs the same data set and filters"
        )
    return AttentionSource("imposed", src.model), src.params


def _only_adds_epochs(old: Config, new: Config) -> bool:
    """Whether ``new`` is ``old`` with more epochs: training then continues from the checkpoint."""
    old_d, new_d = old.to_dict(), new.to_dict()
    old_epochs, new_epochs = old_d["train"].pop("epochs"), new_d["train"].pop("epochs")
    return old_d == new_d and new_epochs >= old_epochs


def train_run(
    cfg: Config, out: str | Path, progress: bool = True, prepared: Prepared | None = None
) -> dict:
    """Trains the model ``cfg`` describes into ``out`` (resuming if a checkpoint is there).

    Returns the metrics dict also written to ``out/metrics.json``. A finished run is not
    retrained; asking a run for more epochs continues it from its checkpoint, exactly as if it had
    been started with that many (each epoch's batch order depends only on the seed and epoch).
    """
    out = Path(out)
    finished = (out / "metrics.json").exists() and (out / "params.msgpack").exists()
    if (out / "config.toml").exists():
        old = load_config(out / "config.toml")
        if old.to_dict() != cfg.to_dict():
            if not _only_adds_epochs(old, cfg):
                state = "a finished" if finished else "an unfinished"
                raise ConfigError(
                    f"{out}: holds {state} run with a different config; choose another --out "
                    "(only train.epochs may grow, to continue training)"
                )
            write_atomic(out / "config.toml", dump_config(cfg))
        elif finished:
            return json.loads((out / "metrics.json").read_text())
        prepared = prepare(
            cfg.data,
            vocab=Vocab.load(out / "vocab.json"),
            dataset=prepared.dataset if prepared else None,
        )
    else:
        out.mkdir(parents=True, exist_ok=True)
        prepared = prepared or prepare(cfg.data)
        write_atomic(out / "vocab.json", json.dumps(prepared.vocab.itos, ensure_ascii=False))
        write_json(out / "data.json", prepared.info())
        write_atomic(out / "config.toml", dump_config(cfg))
    model = model_for(cfg, prepared, len(prepared.vocab))
    params, embeddings = initial_params(cfg, model, prepared)
    source, source_params = _imposed_source(cfg, prepared)

    state = None
    ckpt = out / "checkpoint.msgpack"
    template = TrainState(params, make_optimizer(cfg.train).init(params), params)
    if ckpt.exists():
        state = _restore_state(template, ckpt.read_bytes())

    def save(state: TrainState) -> None:
        write_atomic(ckpt, serialization.msgpack_serialize(_state_dict(state)))

    start = time.perf_counter()
    state = train(
        model, params, prepared.splits, cfg.train, source, source_params, state, save, progress
    )
    elapsed = time.perf_counter() - start
    write_atomic(out / "params.msgpack", serialization.to_bytes(state.best_params))
    best = state.history[state.best_epoch - 1]
    n_train = len(prepared.splits["train"])
    train_seconds = sum(r["seconds"] for r in state.history)
    metrics = {
        "test": best["test"],
        "dev": best["dev"],
        "best_epoch": state.best_epoch,
        "selection": cfg.train.selection,
        "selection_metric": "auc" if model.is_binary else "accuracy",
        "epochs": state.history,
        "train_seconds": train_seconds,
        "train_examples_per_second": n_train * len(state.history) / max(train_seconds, 1e-9),
        "wall_seconds_this_session": elapsed,
        "embeddings": embeddings,
        "attention": cfg.train.attention,
        "model": {"encoder": cfg.model.encoder, "attention": cfg.model.attention},
        "data": prepared.info(),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _state_dict(state: TrainState) -> dict:
    return {
        "params": serialization.to_state_dict(state.params),
        "opt_state": serialization.to_state_dict(state.opt_state),
        "best_params": serialization.to_state_dict(state.best_params),
        "epoch": state.epoch,
        "best_score": state.best_score,
        "best_epoch": state.best_epoch,
        "history": json.dumps(state.history),
    }


def _restore_state(template: TrainState, raw: bytes) -> TrainState:
    data = serialization.msgpack_restore(raw)
    return TrainState(
        params=serialization.from_state_dict(template.params, data["params"]),
        opt_state=serialization.from_state_dict(template.opt_state, data["opt_state"]),
        best_params=serialization.from_state_dict(template.params, data["best_params"]),
        epoch=int(data["epoch"]),
        best_score=float(data["best_score"]),
        best_epoch=int(data["best_epoch"]),
        history=json.loads(data["history"]),
    )
