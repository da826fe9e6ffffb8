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
from pathlib import Path

import jax

from jaxattn.config import Config, ConfigError, dump_config, load_config
from jaxattn.core.errors import RunError
from jaxattn.data.batching import placeholder_batch
from jaxattn.data.embeddings import pretrained_table
from jaxattn.data.prepare import Prepared, prepare
from jaxattn.data.tokenizers import TextTokenizer
from jaxattn.data.vocab import Vocab
from jaxattn.models.encoders import EncoderSettings
from jaxattn.models.model import Model, Params, build_model
from jaxattn.models.pretrained import BertConfig
from jaxattn.runs.fit import read_params, train_model, write_result
from jaxattn.runs.limits import check_memory, check_positions
from jaxattn.runs.pretrained import (
    Source,
    bert_model,
    is_pretrained,
    load_source,
    narrowed,
    one_logit_cls_head,
    pretrained_folder,
    run_source,
    widen_one_logit,
    write_source,
)
from jaxattn.runs.pretrained import initial_params as pretrained_params
from jaxattn.runtime.files import read_json, write_atomic, write_json
from jaxattn.runtime.lock import run_lock
from jaxattn.training.early_stopping import patience_limit
from jaxattn.training.objective import AttentionSource
from jaxattn.training.penalties import penalty_for
from jaxattn.training.trainer import first_batch


def model_for(
    cfg: Config, prepared_or_info: Prepared | dict, vocab_size: int,
    architecture: BertConfig | None = None,
) -> Model:
    """The model ``cfg`` describes: a word encoder sized by the ``model.*`` keys, or a pretrained
    encoder of ``architecture`` (default: the ``config.json`` of ``model.pretrained``) with the
    head ``model.head``."""
    info = prepared_or_info.info() if isinstance(prepared_or_info, Prepared) else prepared_or_info
    if is_pretrained(cfg):
        if architecture is None:
            architecture = load_source(cfg).architecture
        return bert_model(cfg, architecture, info)
    return build_model(
        vocab_size=vocab_size,
        task=info["task"],
        num_classes=len(info["label_names"]),
        encoder=cfg.model.encoder,
        attention=cfg.model.attention,
        embed_dim=cfg.model.embed_dim,
        **dataclasses.asdict(EncoderSettings.of(cfg.model)),
    )


@dataclasses.dataclass
class Run:
    """A trained model read back from its directory."""

    path: Path
    config: Config
    vocab: TextTokenizer  # the word Vocab, or a pretrained encoder's WordPiece
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
    if not (path / "config.toml").exists() and (path / "params.msgpack").exists():
        # jaxattn.train's folder: the model is the caller's own object, which no file rebuilds.
        raise RunError(
            f"{path}: trained with jaxattn.train from a model of your own (no config.toml to "
            f"rebuild it from); `jaxattn wp --run {path} --model FILE.py:FUNCTION` with a "
            "function returning (model, data, TrainConfig), or from Python: jaxattn.analyze("
            f'model, params, data, out="{path}/analysis") and jaxattn.wiegreffe_pinter(model, '
            f'params, data, out="{path}/wp", config=...)'
        )
    for name in ("config.toml", "data.json", "params.msgpack", "metrics.json"):
        if not (path / name).exists():
            raise RunError(
                f"{path}: not a finished run ({name} missing); run `jaxattn train` first"
            )

    cfg = load_config(path / "config.toml")
    # The vocabulary (or a pretrained encoder's files) first, then the data description.
    source = run_source(path, cfg) if is_pretrained(cfg) else None
    if source is None:
        if not (path / "vocab.json").exists():
            raise RunError(f"{path}: not a finished run (vocab.json missing); run `jaxattn "
                           "train` first")
        vocab = Vocab.load(path / "vocab.json")
    else:
        vocab = source.tokenizer
    info = read_json(path / "data.json")
    if not isinstance(info, dict) or not {"task", "label_names"} <= set(info):
        raise RunError(f"{path}/data.json: not a jaxattn data description (task, label_names)")
    if source is None:
        model = model_for(cfg, info, len(vocab))
    else:
        model = model_for(cfg, info, len(vocab), source.architecture)
    # Shapes only: initialising for real ran ~65 small programs (12 s cold) just to be overwritten.
    template = jax.eval_shape(lambda: _init_params(model, cfg, vocab, info, prepared=None))
    if source is not None and one_logit_cls_head(path / "params.msgpack", template):
        params = widen_one_logit(read_params(path / "params.msgpack", narrowed(template)))
    else:
        params = read_params(path / "params.msgpack", template)
    metrics = read_json(path / "metrics.json")
    return Run(path, cfg, vocab, info, model, params, metrics)


def _init_params(
    model: Model, cfg: Config, vocab: TextTokenizer, info: dict, prepared: Prepared | None
) -> Params:
    """Fresh parameters (shapes from a dummy batch when no data is at hand)."""
    if is_pretrained(cfg):
        return model.init(jax.random.key(cfg.train.seed))
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


def _only_extends_training(old: Config, new: Config) -> bool:
    """Whether ``new`` is ``old`` with more epochs (not with ``adamw``) and/or more patience
    (0: off).

    Training then continues from the checkpoint, and ends where an uninterrupted run with the new
    settings would: batch order depends only on seed and epoch, and a run that more patience would
    not have stopped has not stopped yet under less.
    """
    old_d, new_d = old.to_dict(), new.to_dict()
    old_epochs, new_epochs = old_d["train"].pop("epochs"), new_d["train"].pop("epochs")
    old_patience, new_patience = old_d["train"].pop("patience"), new_d["train"].pop("patience")
    # adamw's learning-rate schedule spans train.epochs: more of them would change every step
    epochs_ok = new_epochs == old_epochs if new.train.optimizer == "adamw" else (
        new_epochs >= old_epochs)
    return (old_d == new_d and epochs_ok
            and patience_limit(new_patience) >= patience_limit(old_patience))


def is_finished_run(path: Path) -> bool:
    """Whether ``path`` holds trained params (an imported, not yet fine-tuned run does not)."""
    if not ((path / "metrics.json").exists() and (path / "params.msgpack").exists()):
        return False
    metrics = read_json(path / "metrics.json")
    return not (isinstance(metrics, dict) and metrics.get("unfitted"))


def write_run_files(
    out: Path, cfg: Config, prepared: Prepared, source: Source | None = None
) -> None:
    """What identifies a run: its vocabulary (a pretrained encoder's architecture and
    tokenizer), data description and config."""
    if source is not None:
        write_source(out, source)
    else:
        write_atomic(out / "vocab.json", json.dumps(prepared.vocab.itos, ensure_ascii=False))
    write_json(out / "data.json", prepared.info())
    write_atomic(out / "config.toml", dump_config(cfg))


def write_run(out: Path, cfg: Config, prepared: Prepared, params: Params, metrics: dict,
              source: Source | None = None) -> None:
    """A finished run directory that :func:`load_run` reads (metrics last); ``source``: the
    pretrained encoder's files, for a run of one."""

    with run_lock(out, "jaxattn train"):
        write_run_files(out, cfg, prepared, source)
        write_result(out, params, metrics)


def train_run(
    cfg: Config, out: str | Path, progress: bool = True, prepared: Prepared | None = None
) -> dict:
    """Trains the model ``cfg`` describes into ``out`` (resuming if a checkpoint is there).

    Returns the metrics dict also written to ``out/metrics.json``. A finished run is not
    retrained; asking a run for more epochs continues it from its checkpoint, exactly as if it had
    been started with that many (each epoch's batch order depends only on the seed and epoch).
    Everything is checked (config, data, imposed run) before the first file is written, and the
    directory is locked for the whole run.
    """

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a run directory")
    with run_lock(out, "jaxattn train"):
        finished = is_finished_run(out)
        fresh = not (out / "config.toml").exists()
        if is_pretrained(cfg):
            return _train_pretrained(cfg, out, progress, prepared, fresh, finished)
        if not fresh:
            old = load_config(out / "config.toml")
            if old.to_dict() != cfg.to_dict() and not _only_extends_training(old, cfg):
                state = "a finished" if finished else "an unfinished"
                grow = ("train.patience may grow (adamw's schedule fixes train.epochs)"
                        if cfg.train.optimizer == "adamw"
                        else "train.epochs and train.patience may grow")
                raise ConfigError(
                    f"{out}: holds {state} run with a different config; choose another --out "
                    f"(only {grow}, to continue training)"
                )
            if old.to_dict() == cfg.to_dict() and finished:
                return read_json(out / "metrics.json")
            prepared = prepare(
                cfg.data,
                vocab=Vocab.load(out / "vocab.json"),
                dataset=prepared.dataset if prepared else None,
            )
        else:
            prepared = prepared or prepare(cfg.data)
        check_positions(cfg, prepared)
        model = model_for(cfg, prepared, len(prepared.vocab))
        check_memory(cfg, model, prepared)
        params, embeddings = initial_params(cfg, model, prepared)
        source, source_params = _imposed_source(cfg, prepared)

        def write_files() -> None:
            if fresh:
                write_run_files(out, cfg, prepared)
            else:
                write_atomic(out / "config.toml", dump_config(cfg))

        extra = {
            "embeddings": embeddings,
            "attention": cfg.train.attention,
            "model": {"encoder": cfg.model.encoder, "attention": cfg.model.attention},
        }
        return train_model(
            model, prepared, cfg.train, out, params, progress, source, source_params, extra,
            on_start=write_files, penalty=penalty_for(cfg, prepared),
        )[1]


def _train_pretrained(cfg: Config, out: Path, progress: bool, prepared: Prepared | None,
                      fresh: bool, finished: bool) -> dict:
    """:func:`train_run` of a pretrained encoder (the lock held): a fresh run reads the folder
    ``model.pretrained``; an existing one (imported, or interrupted) its own ``pretrained/``
    files, and an imported one starts from its ``params.msgpack``."""
    if not fresh:
        old = load_config(out / "config.toml")
        if old.to_dict() != cfg.to_dict():
            state = "a finished" if finished else "an unfinished or imported"
            raise ConfigError(
                f"{out}: holds {state} run with a different config; choose another --out "
                "(or train it with its own config.toml)"
            )
        if finished:
            return read_json(out / "metrics.json")
        source = run_source(out, cfg)
    else:
        source = load_source(cfg)
    dataset = prepared.dataset if prepared is not None else None
    prepared = prepare(cfg.data, vocab=source.tokenizer, dataset=dataset)
    model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
    if source.params is not None:
        params = pretrained_params(model, cfg, source.params)
    else:
        template = jax.eval_shape(lambda: model.init(jax.random.key(cfg.train.seed)))
        params = read_params(out / "params.msgpack", template)

    def write_files() -> None:
        if fresh:
            write_run_files(out, cfg, prepared, source)

    extra = {
        "embeddings": {"name": "pretrained", "folder": cfg.model.pretrained},
        "attention": cfg.train.attention,
        "model": {"encoder": cfg.model.encoder, "head": cfg.model.head,
                  "pretrained": cfg.model.pretrained, "max_pieces": cfg.model.max_pieces},
    }
    if (out / "metrics.json").exists():  # an imported run's record goes on
        record = read_json(out / "metrics.json")
        if record.get("unfitted"):
            extra["imported_from"] = record.get("imported_from")
            (out / "metrics.json").unlink()
    return train_model(model, prepared, cfg.train, out, params, progress, on_start=write_files,
                       extra=extra)[1]


def import_hf(cfg: Config, out: str | Path) -> dict:
    """Writes a run directory of the pretrained encoder ``cfg`` names (``model.pretrained``) with
    an unfitted head (``train.seed``), ready to fine-tune (:func:`train_run` with the same config)
    and readable by :func:`load_run`; returns its ``metrics.json`` (``unfitted``, and
    ``imported_from``: the folder)."""
    if not is_pretrained(cfg):
        raise ConfigError(f"import-hf: model.encoder is {cfg.model.encoder!r}, not a pretrained "
                          "encoder")
    out = Path(out)
    with run_lock(out, "jaxattn import-hf"):
        if (out / "config.toml").exists():
            raise ConfigError(f"--out {out}: already holds a run; choose another --out")
        source = load_source(cfg)
        prepared = prepare(cfg.data, vocab=source.tokenizer)
        model = model_for(cfg, prepared, len(prepared.vocab), source.architecture)
        params = pretrained_params(model, cfg, source.params)
        folder = str(pretrained_folder(cfg.model.pretrained).resolve())
        metrics = {"unfitted": True, "imported_from": folder, "epochs": [], "data": prepared.info(),
                   "model": {"encoder": cfg.model.encoder, "head": cfg.model.head,
                             "pretrained": cfg.model.pretrained}}
        write_run_files(out, cfg, prepared, source)
        write_result(out, params, metrics)
        return metrics
