"""Config loading: defaults, overrides, round trip and errors that name the file and key."""

import re

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
        ("[model]\ndropout = 0.1\n", [], "only used by the transformer encoder"),
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


def test_unreadable_config_files_name_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"[train]\nepochs = 2 # \xe9poques\n")
    with pytest.raises(ConfigError, match=r"c\.toml:2: not UTF-8 \(byte 0xe9"):
        load_config(path)
    with pytest.raises(ConfigError, match=f"{tmp_path}: is a folder, not a config file"):
        load_config(tmp_path)
    path.write_bytes(b"\n\n")
    with pytest.raises(ConfigError, match=r"c\.toml: is empty"):
        load_config(path)
    assert load_config(path, ["train.epochs=2"]).train.epochs == 2  # --set gives the settings


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf[train]\nepochs = 2\n")
    assert load_config(path).train.epochs == 2


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("train.learning_rate", "0", "train.learning_rate must be a finite (float32) number > 0, got 0.0"),
        ("train.learning_rate", "nan", "train.learning_rate must be a finite (float32) number > 0, got nan"),
        ("train.learning_rate", "inf", "train.learning_rate must be a finite (float32) number > 0, got inf"),
        ("train.learning_rate", "-1e-3", "train.learning_rate must be a finite (float32) number > 0"),
        ("train.learning_rate", "1e300", "train.learning_rate must be a finite (float32) number > 0"),
        ("train.weight_decay", "-1e-5", "train.weight_decay must be a finite (float32) number >= 0"),
        ("train.weight_decay", "inf", "train.weight_decay must be a finite (float32) number >= 0, got inf"),
        ("train.weight_decay", "-nan", "train.weight_decay must be a finite (float32) number >= 0, got nan"),
        ("train.sort_noise", "1.0", "train.sort_noise must be a finite (float32) number >= 0 and < 1"),
        ("train.sort_noise", "-0.1", "train.sort_noise must be a finite (float32) number >= 0 and < 1"),
        ("train.sort_noise", "nan", "train.sort_noise must be a finite (float32) number >= 0 and < 1"),
        ("train.epochs", "0", "train.epochs must be positive (>= 1), got 0"),
        ("train.batch_size", "-4", "train.batch_size must be positive (>= 1), got -4"),
        ("train.eval_batch_size", "0", "train.eval_batch_size must be positive (>= 1)"),
        ("train.seed", "-1", "train.seed must be in [0, 2147483647], got -1"),
        ("train.seed", "2147483648", "train.seed must be in [0, 2147483647], got 2147483648"),
        ("train.seed", "99999999999999999999999", "train.seed must be in [0, 2147483647]"),
        ("train.buckets", "[]", "train.buckets must be a non-empty, strictly increasing list"),
        ("train.buckets", "[16, 16, 32]", "train.buckets must be a non-empty, strictly increasing"),
        ("train.buckets", "[0, 16]", "train.buckets must be a non-empty, strictly increasing"),
        ("train.buckets", "[32, 16]", "train.buckets must be a non-empty, strictly increasing"),
        ("data.limit_train", "-1", "data.limit_train must be >= 0 (0: all), got -1"),
        ("data.min_df", "-2", "data.min_df must be >= -1 (-1: the data set's default), got -2"),
        ("data.min_length", "-2", "data.min_length must be >= -1"),
        ("data.max_length", "-7", "data.max_length must be >= -1"),
        ("model.embed_dim", "0", "model.embed_dim must be positive (>= 1), got 0"),
        ("model.hidden_size", "-1", "model.hidden_size must be positive (>= 1), got -1"),
        ("model.cnn_filters", "0", "model.cnn_filters must be positive (>= 1), got 0"),
        ("data.name", '"nope"', "data.name: unknown data set 'nope'"),
    ],
)
def test_ranges_and_finiteness_in_the_file_and_from_set(tmp_path, key, value, needle):
    section, name = key.split(".")
    path = _write(tmp_path, f"[{section}]\n{name} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {needle}" or str(err.value).startswith(f"{path}: {needle}")
    assert "from --set" not in str(err.value)
    ok = _write(tmp_path, "[train]\nepochs = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(ok, [f"{key}={value}"])
    assert str(err.value).startswith(f"{ok}: {needle}") and str(err.value).endswith("(from --set)")
    assert err.value.key == key


def test_edges_that_are_allowed():
    cfg = load_config(
        None,
        [
            "train.seed=0",
            "train.sort_noise=0",
            "train.weight_decay=0",
            "data.limit_train=0",
            "data.min_df=-1",
            "data.max_length=0",
            "train.buckets=[1]",
        ],
    )
    assert cfg.train.buckets == (1,)
    assert load_config(None, ["train.seed=2147483647"]).train.seed == 2**31 - 1


def test_without_a_file_errors_name_the_set_option():
    with pytest.raises(ConfigError, match=r"^--set: train\.epochs must be positive"):
        load_config(None, ["train.epochs=0"])
    with pytest.raises(ConfigError, match=r"^--set: unknown key train\.epoch \(from --set\)"):
        load_config(None, ["train.epoch=1"])


def test_toml_errors_name_the_line(tmp_path):
    path = _write(tmp_path, "[train]\nepochs = = 2\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2: not valid TOML")):
        load_config(path)


def test_a_nul_character_in_a_string_names_the_key(tmp_path):
    path = _write(tmp_path, '[data]\ndata_dir = "a\\u0000b"\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: data.data_dir holds a NUL character")):
        load_config(path)
