"""Reading and writing HF BERT folders: exact round trips and one-line errors (the tokenizer:
test_hf_tokenizer.py)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxattn.core.errors import JaxattnError
from jaxattn.models.pretrained import (
    Bert,
    BertConfig,
    PretrainedError,
    load_folder,
    write_folder,
)

CONFIG = BertConfig(
    vocab_size=60,
    hidden_size=16,
    num_layers=2,
    num_heads=2,
    intermediate_size=20,
    max_position_embeddings=12,
    layer_norm_eps=1e-9,
    num_labels=2,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = Bert(CONFIG)
    params = model.init(jax.random.PRNGKey(0))
    path = write_folder(tmp_path_factory.mktemp("bert"), CONFIG, params)
    return path, params


def copy_folder(src, dst):
    dst.mkdir(exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_round_trip_is_exact(folder, tmp_path):
    path, params = folder
    loaded = load_folder(path)
    assert loaded.model.config == CONFIG
    assert jax.tree.structure(loaded.params) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    # Written again, the files are the same bytes.
    write_folder(tmp_path, loaded.model.config, loaded.params)
    assert (tmp_path / "model.safetensors").read_bytes() == (
        path / "model.safetensors"
    ).read_bytes()
    assert (tmp_path / "config.json").read_text() == (path / "config.json").read_text()


def test_bare_encoder_round_trip_has_no_prefix_and_no_classifier(tmp_path):
    from safetensors.numpy import load_file

    config = dataclasses.replace(CONFIG, num_labels=0)
    params = Bert(config).init(jax.random.PRNGKey(1), pooler=False)
    write_folder(tmp_path, config, params)
    names = set(load_file(str(tmp_path / "model.safetensors")))
    assert "embeddings.word_embeddings.weight" in names
    assert not any(n.startswith(("bert.", "pooler", "classifier")) for n in names)
    loaded = load_folder(tmp_path)
    assert loaded.model.config == config and sorted(loaded.params) == ["embeddings", "layers"]
    np.testing.assert_array_equal(
        loaded.params["layers"]["intermediate"]["kernel"],
        params["layers"]["intermediate"]["kernel"],
    )


def test_pre_ln_is_not_written(tmp_path):
    config = dataclasses.replace(CONFIG, pre_ln=True)
    with pytest.raises(PretrainedError, match="pre-LN"):
        write_folder(tmp_path, config, Bert(config).init(jax.random.PRNGKey(0)))


def edit_weights(folder, tmp_path, edit):
    from safetensors.numpy import load_file, save_file

    dst = copy_folder(folder, tmp_path / "edited")
    tensors = load_file(str(dst / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


def edit_config(folder, tmp_path, **changes):
    dst = copy_folder(folder, tmp_path / "edited")
    config = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def one_line_error(path, pattern):
    with pytest.raises(PretrainedError) as info:
        load_folder(path)
    message = str(info.value)
    assert isinstance(info.value, JaxattnError) and "\n" not in message
    assert message.startswith(str(path)), message
    assert pattern in message, message
    return message


def test_missing_tensor(folder, tmp_path):
    name = "bert.encoder.layer.1.attention.self.key.weight"
    path = edit_weights(folder[0], tmp_path, lambda t: t.pop(name))
    one_line_error(path, f"tensor {name} missing")


def test_unknown_tensor(folder, tmp_path):
    name = "bert.encoder.layer.0.attention.self.rotary.weight"
    path = edit_weights(folder[0], tmp_path, lambda t: t.update({name: np.zeros(3, np.float32)}))
    one_line_error(path, f"tensor {name} is not part of a BERT encoder")


def test_pretraining_heads_and_buffers_are_skipped(folder, tmp_path):
    extra = {
        "cls.predictions.bias": np.zeros(60, np.float32),
        "bert.embeddings.position_ids": np.arange(12, dtype=np.int64)[None],
    }
    path = edit_weights(folder[0], tmp_path, lambda t: t.update(extra))
    assert load_folder(path).model.config == CONFIG


def test_shape_mismatch(folder, tmp_path):
    path = edit_config(folder[0], tmp_path, vocab_size=61)
    one_line_error(path, "tensor bert.embeddings.word_embeddings.weight has shape (60, 16)")


@pytest.mark.parametrize(
    "changes,pattern",
    [
        ({"model_type": "roberta"}, "model_type 'roberta' is not supported"),
        ({"model_type": None, "architectures": ["RobertaModel"]}, "architectures"),
        ({"hidden_act": "gelu_new"}, "hidden_act 'gelu_new' is not supported"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"is_decoder": True}, "is_decoder"),
        ({"num_hidden_layers": None}, "num_hidden_layers missing"),
        ({"num_attention_heads": 3}, "not a multiple of num_attention_heads"),
    ],
)
def test_unsupported_config(folder, tmp_path, changes, pattern):
    one_line_error(edit_config(folder[0], tmp_path, **changes), pattern)


def test_model_type_absent_but_bert_architecture_is_accepted(folder, tmp_path):
    path = edit_config(folder[0], tmp_path, model_type=None)
    assert load_folder(path).model.config == CONFIG


def test_missing_files(folder, tmp_path):
    with pytest.raises(PretrainedError, match="model folder not found"):
        load_folder(tmp_path / "nowhere")
    path = copy_folder(folder[0], tmp_path / "nocfg")
    (path / "config.json").unlink()
    with pytest.raises(PretrainedError, match="config.json: model config not found"):
        load_folder(path)
    path = copy_folder(folder[0], tmp_path / "noweights")
    (path / "model.safetensors").unlink()
    with pytest.raises(PretrainedError, match="weights file not found"):
        load_folder(path)
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PretrainedError, match="cannot read safetensors"):
        load_folder(path)
