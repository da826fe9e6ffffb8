"""Training end to end on the generated task: accuracy, determinism, resume, frozen attention."""

import json

import numpy as np
import pytest

from jaxattn.cli import main
from jaxattn.config import ConfigError, load_config
from jaxattn.data.batching import make_batch
from jaxattn.data.generators import make_synthetic
from jaxattn.data.prepare import prepare
from jaxattn.runs.run import load_run, train_run

SMALL = [
    "data.name=synthetic",
    "model.embed_dim=64",
    "model.hidden_size=32",
    "model.cnn_filters=16",
    "model.width=32",
    "model.ff_size=64",
    "train.epochs=3",
    "train.buckets=[32, 64]",
]


@pytest.fixture(scope="module")
def data():
    cfg = load_config(None, SMALL)
    return prepare(cfg.data, dataset=make_synthetic(n_train=3000, n_dev=300, n_test=400, seed=1))


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average", "transformer"])
def test_learns_the_planted_task(tmp_path, data, encoder):
    cfg = load_config(None, SMALL + [f"model.encoder={encoder}"])
    metrics = train_run(cfg, tmp_path / "run", progress=False, prepared=data)
    assert metrics["test"]["accuracy"] >= 0.93, metrics["test"]
    assert set(metrics["test"]) >= {"accuracy", "f1", "auc"}
    assert metrics["embeddings"]["name"] == "random"
    run = load_run(tmp_path / "run")
    assert run.vocab.itos == data.vocab.itos


def test_deterministic_and_resumable(tmp_path, data):
    cfg = load_config(None, SMALL + ["model.encoder=average", "train.epochs=2"])
    full = train_run(cfg, tmp_path / "a", progress=False, prepared=data)
    # Interrupted after one epoch (or asked for more epochs later): continuing the same directory
    # repeats exactly what an uninterrupted run does.
    one = load_config(None, SMALL + ["model.encoder=average", "train.epochs=1"])
    train_run(one, tmp_path / "b", progress=False, prepared=data)
    resumed = train_run(cfg, tmp_path / "b", progress=False, prepared=data)
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    assert resumed["epochs"][1]["loss"] == pytest.approx(full["epochs"][1]["loss"], rel=1e-5)
    assert resumed["test"] == full["test"]
    # A finished run is not retrained.
    assert (
        train_run(cfg, tmp_path / "a", progress=False, prepared=data)["train_seconds"]
        == full["train_seconds"]
    )


def test_more_patience_continues_like_an_uninterrupted_run(tmp_path, data):
    from jaxattn.runs.run import _only_extends_training

    # At this rate dev AUC is 1.0 after epoch 1, so patience 1 stops after epoch 2 of 3.
    base = SMALL + ["model.encoder=average", "train.epochs=3", "train.learning_rate=0.1"]
    stopped, off = (load_config(None, base + [f"train.patience={p}"]) for p in (1, 0))
    assert _only_extends_training(stopped, off)  # 0 is off: the most patience
    assert _only_extends_training(stopped, load_config(None, base + ["train.patience=2"]))
    assert not _only_extends_training(off, stopped)  # less patience would rewrite history
    assert not _only_extends_training(stopped, load_config(None, base + ["train.learning_rate=0.5"]))
    full = train_run(off, tmp_path / "a", progress=False, prepared=data)
    early = train_run(stopped, tmp_path / "b", progress=False, prepared=data)
    assert [e["epoch"] for e in early["epochs"]] == [1, 2]
    continued = train_run(off, tmp_path / "b", progress=False, prepared=data)
    assert [e["epoch"] for e in continued["epochs"]] == [1, 2, 3]
    assert continued["test"] == full["test"]
    with pytest.raises(ConfigError, match="train.patience may grow"):
        train_run(stopped, tmp_path / "a", progress=False, prepared=data)


def test_uniform_attention_training_reaches_metrics(tmp_path, data):
    cfg = load_config(None, SMALL + ["model.encoder=average", "train.attention=uniform"])
    metrics = train_run(cfg, tmp_path / "u", progress=False, prepared=data)
    assert metrics["attention"] == "uniform"
    assert metrics["test"]["accuracy"] > 0.6


def test_cli_train_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--quiet", "--out", str(out)] + sum((["--set", s] for s in SMALL), [])
    assert main(args + ["--set", "model.encoder=average", "--set", "train.epochs=1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test", "dev", "epochs", "train_seconds"} <= set(metrics)
    assert main(["train", "--out", str(tmp_path / "x"), "--set", "train.epochz=1"]) == 2
    assert "unknown key train.epochz" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "y"), "--set", "data.name=nope"]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err
    # A different config into the same finished directory is refused, nothing is overwritten.
    before = (out / "metrics.json").read_bytes()
    assert main(args + ["--set", "model.encoder=cnn"]) == 2
    assert (out / "metrics.json").read_bytes() == before


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint():
    import jax.numpy as jnp

    from jaxattn.core.errors import RunError
    from jaxattn.training.train_state import TrainState
    from jaxattn.training.trainer import train_members

    params = {"w": jnp.zeros((1, 2))}
    state = TrainState(params, {"m": jnp.zeros((1, 2))}, params, np.full(1, -np.inf),
                       np.zeros(1, np.int64))
    losses = iter([1.0, float("nan")])

    def step(p, o, batch):
        return p, o, jnp.asarray([next(losses)])

    saved = []
    with pytest.raises(RunError, match="non-finite in epoch 2; the checkpoint of epoch 1 is kept"):
        train_members(step, state, 3, lambda epoch: iter([None]), 1, 10,
                      lambda p: (np.zeros(1), [{}]),
                      lambda st: saved.append((st.epoch, st.trained is not None)), False)
    assert saved == [(0, True), (1, False)] and state.epoch == 1
    assert state.history[0][0]["loss"] == pytest.approx(0.1)  # a mean per training instance


def test_transformer_dropout_is_trained_with_per_batch_keys_and_deterministic(tmp_path):
    """Dropout > 0 changes training (keys reach the encoder), reruns are identical, and the
    evaluation is deterministic (no key outside training)."""
    base = ["data.name=synthetic", "data.limit_train=120", "model.encoder=transformer",
            "model.embed_dim=16", "model.width=16", "model.heads=2", "model.ff_size=16",
            "model.layers=1", "train.epochs=1", "train.buckets=[64]"]
    data = prepare(load_config(None, base).data)
    runs = {}
    for name, rate in (("a", 0.3), ("b", 0.3), ("off", 0.0)):
        cfg = load_config(None, [*base, f"model.dropout={rate}"])
        runs[name] = train_run(cfg, tmp_path / name, progress=False, prepared=data)
    assert runs["a"]["epochs"][0]["loss"] == runs["b"]["epochs"][0]["loss"]
    assert runs["a"]["epochs"][0]["loss"] != runs["off"]["epochs"][0]["loss"]
    assert (tmp_path / "a" / "params.msgpack").read_bytes() == (
        tmp_path / "b" / "params.msgpack"
    ).read_bytes()
    run = load_run(tmp_path / "a")
    batch = make_batch(data.splits["test"], range(8), buckets=(64,))
    first, second = run.model.forward(run.params, batch), run.model.forward(run.params, batch)
    np.testing.assert_array_equal(np.asarray(first[0]), np.asarray(second[0]))


def test_an_epoch_killed_while_evaluating_resumes_at_its_evaluation(tmp_path):
    """The checkpoint written between an epoch's training and its evaluation holds the trained
    parameters: a resumed run evaluates them without training the epoch again and ends with
    what an uninterrupted run ends with."""
    import jax.numpy as jnp

    from jaxattn.training.train_state import TrainState, load_checkpoint, save_checkpoint
    from jaxattn.training.trainer import train_members

    def fresh():
        params = {"w": jnp.zeros((1, 2))}
        return TrainState(params, {"m": jnp.zeros((1, 2))}, params, np.full(1, -np.inf),
                          np.zeros(1, np.int64))

    steps = []

    def step(p, o, batch):
        steps.append(batch)
        return ({"w": p["w"] + batch}, {"m": o["m"] + 1.0}, jnp.asarray([float(batch)]))

    def evaluate(p):
        return -np.abs(np.asarray(p["w"])[:, 0] - 3.0), [{"dev": float(p["w"][0, 0])}]

    def batches(epoch):
        return iter([epoch + 1.0, epoch + 2.0])

    def run(state, evaluate, path):
        return train_members(step, state, 3, batches, 2, 4, evaluate,
                             lambda st: save_checkpoint(path, st, {"k": 1}), False)

    full = run(fresh(), evaluate, tmp_path / "full.msgpack")
    steps.clear()

    def killed_in_epoch_2(p):
        if float(p["w"][0, 0]) > 3.0:  # epoch 2 trained: w = 3 + 5
            raise KeyboardInterrupt
        return evaluate(p)

    path = tmp_path / "ckpt.msgpack"
    with pytest.raises(KeyboardInterrupt):
        run(fresh(), killed_in_epoch_2, path)
    assert steps == [1.0, 2.0, 2.0, 3.0]
    pending = load_checkpoint(path, fresh(), {"k": 1})
    assert pending.epoch == 1 and pending.trained["losses"] == [pytest.approx(5.0 / 4)]
    assert float(pending.params["w"][0, 0]) == 8.0 and float(pending.best_params["w"][0, 0]) == 3.0
    steps.clear()
    resumed = run(pending, evaluate, path)
    assert steps == [3.0, 4.0]  # epoch 2 is evaluated, not trained again; epoch 3 is trained
    assert resumed.history == [
        [{**r, "seconds": pytest.approx(r["seconds"], abs=10),
          "eval_seconds": pytest.approx(r["eval_seconds"], abs=10)} for r in rs]
        for rs in full.history
    ]
    assert resumed.trained is None and list(resumed.best_epoch) == list(full.best_epoch) == [1]
    np.testing.assert_array_equal(resumed.params["w"], full.params["w"])
