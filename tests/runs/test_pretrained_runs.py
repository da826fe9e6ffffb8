"""Pretrained-encoder runs: import-hf / export-hf round trips and errors, fine-tuning a tiny
random BERT through the CLI with both heads, and analysing it to a report."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from safetensors.numpy import load_file, save_file

from jaxattn.cli.commands import main
from jaxattn.config import Config, ConfigError, load_config
from jaxattn.data.generators import make_synthetic
from jaxattn.models.pretrained import (
    Bert,
    BertAttentionClassifier,
    BertClsClassifier,
    BertConfig,
    BertEncoded,
    load_folder,
)
from jaxattn.runs.run import load_run
from jaxattn.training.config import TrainConfig
from jaxattn.training.optimizers import make_optimizer
from tests.helpers import tiny_bert_folder

DATA = ["--set", 'data.name="synthetic"', "--set", "data.limit_train=64"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    words = {w for split in make_synthetic().splits.values() for ex in split for w in ex.tokens}
    return tiny_bert_folder(tmp_path_factory.mktemp("hf") / "tiny", words)


def test_import_hf_writes_a_run_that_loads_with_the_folders_encoder(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["import-hf", str(folder), "--out", str(out), *DATA]) == 0
    assert "unfitted cls head" in capsys.readouterr().out
    run = load_run(out)
    assert isinstance(run.model, BertClsClassifier)
    assert json.loads((out / "metrics.json").read_text())["unfitted"]
    loaded = load_folder(folder)
    for path, leaf in jax.tree_util.tree_flatten_with_path(loaded.params)[0]:
        got = run.params["bert"]
        for key in path:
            got = got[key.key]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(leaf))
    cfg = load_config(out / "config.toml")
    assert (cfg.model.encoder, cfg.train.optimizer, cfg.train.learning_rate) == (
        "bert", "adamw", 1e-4)

    # export-hf: the encoder and the binary head's two logits come back exactly
    back = tmp_path / "back"
    assert main(["export-hf", "--run", str(out), "--out", str(back)]) == 0
    exported = load_folder(back)
    assert exported.model.config.num_labels == 2
    for key in ("embeddings", "layers", "pooler", "classifier"):
        source = run.params["head" if key == "classifier" else "bert"][key]
        jax.tree_util.tree_map(np.testing.assert_array_equal, exported.params[key], source)
    assert np.asarray(exported.params["classifier"]["kernel"]).shape[1] == 2

    # A binary cls run saved with one sigmoid logit z is read as the two logits [0, z].
    from flax import serialization
    old = jax.tree_util.tree_map(np.asarray, run.params)
    z = {"kernel": old["head"]["classifier"]["kernel"][:, 1:] * 3.0,
         "bias": old["head"]["classifier"]["bias"][1:] + 0.5}
    old["head"]["classifier"] = z
    (out / "params.msgpack").write_bytes(serialization.to_bytes(old))
    widened = load_run(out).params["head"]["classifier"]
    np.testing.assert_array_equal(widened["kernel"][:, 0], 0)
    np.testing.assert_array_equal(widened["kernel"][:, 1:], z["kernel"])
    np.testing.assert_array_equal(widened["bias"], [0.0, z["bias"][0]])


def test_import_hf_errors_are_one_line(folder, tmp_path, capsys):
    assert main(["import-hf", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r1"),
                 *DATA]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model folder not found" in err
    assert not (tmp_path / "r1").exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(broken / "model.safetensors"))
    tensors["encoder.layer.0.extra.weight"] = np.zeros(3, np.float32)
    del tensors["embeddings.LayerNorm.bias"]
    save_file(tensors, str(broken / "model.safetensors"))
    assert main(["import-hf", str(broken), "--out", str(tmp_path / "r2"), *DATA]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "encoder.layer.0.extra.weight" in err

    assert main(["import-hf", str(folder), "--out", str(tmp_path / "r3"), "--set",
                 "model.head=\"pooled\"", *DATA]) == 2
    assert "model.head" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="model.pretrained"):
        load_config(None, ['model.encoder="bert"'])


@pytest.mark.parametrize("head", ["cls", "attention"])
def test_fine_tune_and_analyse_each_head(head, folder, tmp_path, capsys):
    """A tiny random BERT (hidden 32, 2 layers) fine-tuned 1 epoch on the synthetic task via
    the CLI, then analysed to a report: the attention head has every stage, the cls head the
    base ones, its verdict "not applicable"."""
    out = tmp_path / head
    # one padded length (the texts have 11 to 55 pieces): one program per step to compile
    assert main(["import-hf", str(folder), "--out", str(out), "--head", head, *DATA,
                 "--set", "train.eval_batch_size=512", "--set", "train.buckets=[64]"]) == 0
    assert main(["train", "--config", str(out / "config.toml"), "--out", str(out),
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and not metrics.get("unfitted") and metrics["imported_from"]
    stages = "grad,loo" + (",perm" if head == "attention" else "")
    assert main(["analyze", "--run", str(out), "--limit", "6", "--only", stages,
                 "--quiet", "--export-attributions", str(out / "a.jsonl")]) == 0
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    assert summary["pooling_attention"] is (head == "attention")
    assert ("attn_grad" in summary["kendall"]) is (head == "attention")
    assert "grad_loo" in summary["kendall"]
    words = summary["rationale_words"]
    assert words["rule"] == "a word's importance is the sum of its pieces'"
    assert set(words["auprc"]) >= {"grad", "loo", "uniform"}
    html = (out / "analysis" / "index.html").read_text()
    assert "words (the sum of each word" in html
    if head == "cls":
        assert "Not applicable: this model has no pooling attention" in html
    record = json.loads((out / "a.jsonl").read_text().splitlines()[0])
    pieces = [t for t in record["tokens"]]
    assert any(p.startswith("##") for p in pieces) or len(pieces) == len(record["words"])
    for key, scores in record["scores"].items():
        assert np.isclose(sum(scores), sum(record["word_scores"][key]), atol=1e-5)
    capsys.readouterr()


def _tiny_model(head_class):
    config = BertConfig(vocab_size=20, hidden_size=8, num_layers=3, num_heads=2,
                        intermediate_size=8, max_position_embeddings=8)
    return head_class(Bert(config))


def test_layer_decay_and_frozen_embeddings():
    model = _tiny_model(BertAttentionClassifier)
    params = model.init(jax.random.key(0))
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    cfg = TrainConfig(optimizer="adamw", learning_rate=1e-3, warmup_fraction=0.0,
                      weight_decay=0.0)

    def first_update(c):
        opt = make_optimizer(c, 320, model, params)
        return opt.update(grads, opt.init(params), params)[0]

    plain = first_update(cfg)
    decayed = first_update(TrainConfig(**{**cfg.__dict__, "layer_decay": 0.5}))
    ratio = decayed["bert"]["layers"]["query"]["kernel"] / plain["bert"]["layers"]["query"][
        "kernel"]
    np.testing.assert_allclose(ratio[:, 0, 0], [0.5**3, 0.5**2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(
        decayed["bert"]["embeddings"]["word"] / plain["bert"]["embeddings"]["word"], 0.5**4,
        rtol=1e-6)
    np.testing.assert_allclose(decayed["head"]["v"], plain["head"]["v"])
    frozen = first_update(TrainConfig(**{**cfg.__dict__, "freeze_embeddings": True}))
    assert not np.asarray(frozen["bert"]["embeddings"]["word"]).any()
    np.testing.assert_allclose(frozen["bert"]["layers"]["query"]["kernel"],
                               plain["bert"]["layers"]["query"]["kernel"])
    assert isinstance(optax.tree_utils.tree_get(frozen, "v"), jax.Array)
    with pytest.raises(ConfigError, match="layer_decay"):
        load_config(None, ["train.layer_decay=0.5"])
    assert Config().train.layer_decay == 1.0


def test_dropout_only_with_a_key():
    model = _tiny_model(BertClsClassifier)
    params = model.init(jax.random.key(0))
    ids = jnp.array([[2, 5, 6, 7, 3]])
    valid = jnp.ones_like(ids, bool)
    types = jnp.zeros_like(ids)
    a = model.bert.encode(params["bert"], ids, types, valid).hidden
    b = model.bert.encode(params["bert"], ids, types, valid).hidden
    np.testing.assert_array_equal(a, b)
    c = model.bert.encode(params["bert"], ids, types, valid, dropout_key=jax.random.key(1)).hidden
    d = model.bert.encode(params["bert"], ids, types, valid, dropout_key=jax.random.key(2)).hidden
    assert not np.allclose(a, c) and not np.allclose(c, d)


def test_cls_head_drops_out_the_pooled_state_only_in_training():
    """HF's dropout on the pooled [CLS] state: with an identity classifier each logit is one
    pooled unit, zero where dropped and scaled by 1 / (1 - rate) where kept; without the
    batch's dropout key the head is deterministic."""
    config = BertConfig(vocab_size=20, hidden_size=8, num_layers=1, num_heads=2,
                        intermediate_size=8, max_position_embeddings=8)
    model = BertClsClassifier(Bert(config), task="multiclass", num_classes=8)
    params = model.init(jax.random.key(0))
    params["head"]["classifier"] = {"kernel": jnp.eye(8), "bias": jnp.zeros(8)}
    hidden = jax.random.normal(jax.random.key(3), (64, 5, 8))
    mask = jnp.ones((64, 5), bool)
    plain = np.asarray(model.logits(params, BertEncoded(hidden, mask)))
    np.testing.assert_allclose(plain, model.bert.pool(params["bert"], hidden), atol=1e-6)
    key = np.asarray([0, 7], np.uint32)
    dropped = np.asarray(model.logits(params, BertEncoded(hidden, mask, dropout_key=key)))
    rate = config.hidden_dropout
    ratio = dropped / plain
    kept = np.isclose(ratio, 1 / (1 - rate), rtol=1e-5)
    assert np.all(kept | (dropped == 0))
    assert 0.04 < 1 - kept.mean() < 0.2  # 512 units at rate 0.1
    again = model.logits(params, BertEncoded(hidden, mask, dropout_key=key))
    np.testing.assert_array_equal(dropped, again)
