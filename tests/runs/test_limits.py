"""What a config must fit: the memory estimate against a count of the parameters, and the
refusals naming the key to change."""

import jax
import numpy as np
import pytest

from jaxattn.config import ConfigError, load_config
from jaxattn.data.prepare import prepare
from jaxattn.runs import limits
from jaxattn.runs.run import model_for
from jaxattn.training.trainer import first_batch

SMALL = ["data.name=synthetic", "data.limit_train=40", "model.encoder=average",
         "model.embed_dim=16", "train.batch_size=8", "train.buckets=[64]"]


@pytest.fixture(scope="module")
def setup():
    cfg = load_config(None, SMALL)
    prepared = prepare(cfg.data)
    return cfg, prepared, model_for(cfg, prepared, len(prepared.vocab))


def test_the_estimate_counts_four_copies_of_the_parameters(setup):
    cfg, prepared, model = setup
    params = model.init(jax.random.key(0), first_batch(prepared.splits["train"]))
    n = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
    held, batch = limits.memory_estimate(cfg, model, prepared)
    assert held == limits.COPIES_WHILE_TRAINING * 4 * n
    assert batch % (cfg.train.batch_size * 64 * limits.ACTIVATION_VECTORS * 4) == 0


def test_each_refusal_names_its_key(setup, monkeypatch):
    cfg, prepared, model = setup
    held, batch = limits.memory_estimate(cfg, model, prepared)
    monkeypatch.setattr(limits, "available_memory", lambda: (held - 1, "a small machine"))
    with pytest.raises(ConfigError, match="while training .* of a small machine") as err:
        limits.check_memory(cfg, model, prepared)
    assert err.value.key == "model.hidden_size"
    assert batch > held  # this small model: one batch of activations outweighs the parameters
    monkeypatch.setattr(limits, "available_memory", lambda: (batch - 1, "a machine"))
    with pytest.raises(ConfigError, match="train.batch_size = 8: one batch") as err:
        limits.check_memory(cfg, model, prepared)
    assert err.value.key == "train.batch_size"
    monkeypatch.setattr(limits, "available_memory", lambda: (held + batch, "enough"))
    limits.check_memory(cfg, model, prepared)
    monkeypatch.setattr(limits, "available_memory", lambda: None)
    limits.check_memory(cfg, model, prepared)  # nothing known: nothing refused
