"""jaxattn.train and jaxattn.prepare_data check their config sections as a config file's are."""

from __future__ import annotations

import dataclasses

import pytest

import jaxattn
from jaxattn.config import ConfigError
from tests.helpers import toy_model


@pytest.mark.parametrize("changes,needle", [
    ({"learning_rate": -1.0}, "train.learning_rate must be a finite (float32) number > 0, got -1.0"),
    ({"batch_size": 0}, "train.batch_size must be positive (>= 1), got 0"),
    ({"epochs": 0}, "train.epochs must be positive (>= 1), got 0"),
    ({"seed": -1}, "train.seed must be in [0, 2147483647], got -1"),
    ({"optimizer": "sgd"}, "train.optimizer: 'sgd' is not one of amsgrad, adamw"),
])
def test_train_refuses_what_a_config_file_refuses(tmp_path, changes, needle):
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=20))
    model, _, _ = toy_model("binary", "average", vocab_size=len(data.vocab))
    cfg = dataclasses.replace(jaxattn.TrainConfig(epochs=1), **changes)
    for config in (cfg, jaxattn.Config(train=cfg)):
        with pytest.raises(ConfigError) as err:
            jaxattn.train(model, data, config, out=tmp_path / "run", progress=False)
        assert str(err.value) == f"jaxattn.train: {needle}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("changes,needle", [
    ({"name": "file", "train_file": "x.csv", "dev_fraction": 1.5},
     "data.dev_fraction must be in [0, 1), got 1.5"),
    ({"limit_train": -3}, "data.limit_train must be >= 0 (0: all), got -3"),
    ({"name": "sst3"}, "data.name: unknown data set 'sst3'"),
])
def test_prepare_data_refuses_what_a_config_file_refuses(changes, needle):
    with pytest.raises(ConfigError) as err:
        jaxattn.prepare_data(jaxattn.DataConfig(**changes))
    assert str(err.value).startswith(f"jaxattn.prepare_data: {needle}"), err.value
