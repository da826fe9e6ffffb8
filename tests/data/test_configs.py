"""Every generated file in configs/ loads, names a registered data set, and matches generate.py."""

import importlib.util
from pathlib import Path

import pytest

from jaxattn.config import ATTENTIONS, PRETRAINED_ENCODERS, WORD_ENCODERS, load_config
from jaxattn.data.sources import REGISTRY

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _generator():
    spec = importlib.util.spec_from_file_location("configs_generate", CONFIGS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# user_*.toml are hand-written examples for your own files (tests/data/test_tabular.py).
GENERATED = sorted(p for p in CONFIGS.glob("*.toml") if not p.name.startswith("user_"))


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: p.stem)
def test_config_loads_and_names_a_registered_data_set(path):
    cfg = load_config(path)
    assert cfg.data.name in REGISTRY
    if cfg.model.encoder in PRETRAINED_ENCODERS:
        assert path.stem == f"{cfg.data.name}_{cfg.model.pretrained}_{cfg.model.head}"
    else:
        assert path.stem == f"{cfg.data.name}_{cfg.model.encoder}_{cfg.model.attention}"


def test_every_data_set_encoder_and_attention_has_a_config_that_is_up_to_date():
    expected = {f"{n}_{e}_{a}.toml" for n in REGISTRY for e in WORD_ENCODERS for a in ATTENTIONS}
    assert expected <= {p.name for p in CONFIGS.glob("*.toml")}
    assert _generator().stale(CONFIGS) == []


def test_protocol_values():
    sst2 = load_config(CONFIGS / "sst2_bilstm_additive.toml")
    assert (sst2.train.epochs, sst2.train.batch_size) == (8, 32)
    assert (sst2.data.embeddings, sst2.model.embed_dim) == ("glove-6b-50d", 50)
    snli = load_config(CONFIGS / "snli_cnn_dot.toml")
    assert (snli.train.epochs, snli.train.batch_size) == (25, 128)
    babi = load_config(CONFIGS / "babi3_average_dot.toml")
    assert (babi.train.epochs, babi.train.batch_size) == (100, 50)
    assert (babi.data.embeddings, babi.model.embed_dim) == ("random", 50)
    synthetic = load_config(CONFIGS / "synthetic_bilstm_dot.toml")
    assert (synthetic.model.embed_dim, synthetic.model.hidden_size, synthetic.train.epochs) == (
        64,
        64,
        4,
    )
    transformer = load_config(CONFIGS / "sst2_transformer_additive.toml")
    assert (transformer.model.encoder, transformer.model.width, transformer.model.heads) == (
        "transformer",
        128,
        4,
    )
    assert (transformer.model.layers, transformer.model.ff_size) == (2, 256)
    assert transformer.model.max_positions == 1024
    assert load_config(CONFIGS / "eraser_movies_transformer_dot.toml").model.max_positions == 3072
