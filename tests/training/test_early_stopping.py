"""``train.patience``: stop once no member has improved for that many epochs; resumable."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.config import load_config
from jaxattn.core.errors import JaxattnError
from jaxattn.data.generators import make_synthetic
from jaxattn.data.prepare import prepare
from jaxattn.runs.run import train_run
from jaxattn.training.early_stopping import patience_ran_out
from jaxattn.training.train_state import TrainState
from jaxattn.training.trainer import train_members


def test_patience_ran_out():
    assert not patience_ran_out(5, [1], 0)  # off
    assert not patience_ran_out(0, [0], 1)  # nothing run yet
    assert patience_ran_out(3, [1], 2) and not patience_ran_out(2, [1], 2)
    assert not patience_ran_out(4, [1, 3], 2)  # one member still improving
    assert patience_ran_out(5, [1, 3], 2)


def _run(scores, epochs, patience, state=None, saved=None):
    """train_members over scripted per-epoch selection scores <float>[epochs, M]."""
    m = len(scores[0])
    params = {"w": jnp.zeros((m, 2))}
    state = state or TrainState(params, {"m": jnp.zeros((m, 2))}, params, np.full(m, -np.inf),
                                np.zeros(m, np.int64))

    def evaluate(p):
        return np.asarray(scores[state.epoch]), [{} for _ in range(m)]

    train_members(lambda p, o, b: (p, o, jnp.ones(m)), state, epochs, lambda e: iter([None]), 1,
                  1, evaluate, None if saved is None else (lambda st: saved.append(st.epoch)),
                  False, patience=patience)
    return state


def test_stops_when_every_member_stopped_improving():
    scores = [[0.5, 0.5], [0.6, 0.4], [0.55, 0.6], [0.5, 0.59], [0.5, 0.58], [0.9, 0.9]]
    state = _run(scores, 6, patience=2)
    assert state.epoch == 5 and list(state.best_epoch) == [2, 3]
    assert _run(scores, 6, patience=0).epoch == 6  # off: every epoch


def test_a_resumed_run_stops_where_an_uninterrupted_one_does():
    scores = [[0.5], [0.7], [0.6], [0.65], [0.9], [0.95]]
    full = _run(scores, 6, patience=2)
    part = _run(scores, 2, patience=2)  # interrupted after 2 epochs
    resumed = _run(scores, 6, patience=2, state=part)
    assert full.epoch == resumed.epoch == 4
    assert list(full.best_epoch) == list(resumed.best_epoch) == [2]
    again = _run(scores, 6, patience=2, state=resumed)  # nothing more to do
    assert again.epoch == 4


def test_config_key_and_range():
    assert load_config(None, []).train.patience == 0
    assert load_config(None, ["train.patience=3"]).train.patience == 3
    with pytest.raises(JaxattnError, match="train.patience"):
        load_config(None, ["train.patience=-1"])


def test_a_trained_run_with_patience_resumes_from_its_checkpoint(tmp_path):
    small = ["data.name=synthetic", "model.encoder=average", "model.embed_dim=16",
             "model.hidden_size=8", "train.buckets=[32, 64]", "train.patience=1"]
    cfg = load_config(None, small + ["train.epochs=6"])
    data = prepare(cfg.data, dataset=make_synthetic(n_train=300, n_dev=60, n_test=60, seed=1))
    full = train_run(cfg, tmp_path / "a", progress=False, prepared=data)
    ran = len(full["epochs"])
    assert full["best_epoch"] == ran - 1 or ran == 6
    first = load_config(None, small + ["train.epochs=1"])
    train_run(first, tmp_path / "b", progress=False, prepared=data)
    resumed = train_run(cfg, tmp_path / "b", progress=False, prepared=data)
    assert [e["epoch"] for e in resumed["epochs"]] == [e["epoch"] for e in full["epochs"]]
    assert resumed["test"] == full["test"] and resumed["best_epoch"] == full["best_epoch"]
