"""Config loading: defaults, overrides, round trip and errors that name the file and key."""

import pytest

from jaxattn.config import Config, ConfigError, dump_config, load_config


def _write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_overrides_and_round_trip(tmp_path):
    path = _write(tmp_path, '[data]\nname = "sst2"\n[train]\nepochs = 3\n')
    cfg = load_config(
        path, ["train.learning_rate=0.01", "model.encoder=cnn", "train.buckets=[8, 16]"]
    )
    assert (cfg.data.name, cfg.train.epochs, cfg.train.learning_rate) == ("sst2", 3, 0.01)
    assert cfg.model.encoder == "cnn" and cfg.train.buckets == (8, 16)
    again = load_config(_write(tmp_path, dump_config(cfg)))
    assert again == cfg
    assert load_config(None) == Config()


@pytest.mark.parametrize(
    "text,overrides,needle",
    [
        ("[train]\nepoch = 3\n", [], "unknown key train.epoch"),
        ("[trian]\nepochs = 3\n", [], "unknown section [trian]"),
        ('[train]\nepochs = "three"\n', [], "train.epochs: expected int"),
        ('[model]\nencoder = "gru"\n', [], "model.encoder: 'gru' is not one of"),
        ("[train]\nepochs = 0\n", [], "train.epochs must be positive"),
        ("[train\n", [], "not valid TOML"),
        ("", ["train.epochs"], "expected section.key=value"),
        ("", ["train.nope=1"], "unknown key train.nope"),
        ('[data]\nembeddings = "glove-6b-50d"\n', [], "embed_dim must be 50"),
        ('[train]\nattention = "imposed"\n', [], "imposed_run"),
        ('[model]\nencoder = "transformer"\nwidth = 10\nheads = 4\n', [], "must divide"),
        ("[model]\nheads = 0\n", [], "model.heads must be positive"),
        ("[model]\nmax_positions = 0\n", [], "model.max_positions must be positive"),
        ("[model]\ndropout = 1.0\n", [], "model.dropout must be in [0, 1)"),
        ("[model]\ndropout = 0.1\n", [], "not supported yet"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path, text, overrides, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert needle in str(err.value)
    if "expected section.key" not in needle:
        assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
