"""Parity with PyTorch ``transformers``: a random BertForSequenceClassification saved with
``save_pretrained`` and read back by :mod:`jaxattn.models.pretrained.hf_files` computes the same
hidden states, attention probabilities, pooled output, logits and input gradients."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.models.pretrained import cls_logits, load_folder, write_folder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.torch

ATOL = 1e-5


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=24,
        type_vocab_size=2,
        layer_norm_eps=1e-7,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():  # HF's init leaves LayerNorms at 1 and biases at 0; move them all
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("twin")
    model.save_pretrained(folder, safe_serialization=True)
    model = transformers.BertForSequenceClassification.from_pretrained(
        folder, attn_implementation="eager"
    ).eval()
    rng = np.random.default_rng(0)
    B, T = 3, 9
    lengths = np.array([9, 6, 3])
    valid = np.arange(T)[None] < lengths[:, None]
    ids = np.where(valid, rng.integers(1, 100, size=(B, T)), 0).astype(np.int32)
    types = np.where(valid & (np.arange(T)[None] >= 2), 1, 0).astype(np.int32)
    return folder, model, ids, types, valid


def torch_outputs(model, ids, types, valid):
    embeds = model.bert.embeddings.word_embeddings(torch.tensor(ids).long()).detach()
    embeds.requires_grad_(True)
    out = model(
        inputs_embeds=embeds,
        token_type_ids=torch.tensor(types).long(),
        attention_mask=torch.tensor(valid).long(),
        output_hidden_states=True,
        output_attentions=True,
    )
    base = model.bert(
        inputs_embeds=embeds,
        token_type_ids=torch.tensor(types).long(),
        attention_mask=torch.tensor(valid).long(),
    )
    out.logits[:, 1].sum().backward()
    return {
        "hidden_states": np.stack([h.detach().numpy() for h in out.hidden_states]),
        "attentions": np.stack([a.detach().numpy() for a in out.attentions]),
        "pooled": base.pooler_output.detach().numpy(),
        "logits": out.logits.detach().numpy(),
        "grad": embeds.grad.numpy(),
    }


def test_twin_matches_transformers(twin):
    folder, torch_model, ids, types, valid = twin
    loaded = load_folder(folder)
    model, params = loaded.model, loaded.params
    assert model.config.num_labels == 3 and model.config.layer_norm_eps == 1e-7
    ref = torch_outputs(torch_model, ids, types, valid)

    def logits_of(emb):
        out = model.encode_embedded(params, emb, types, valid, return_attention=True)
        return cls_logits(params, out.hidden), out

    emb = model.embed(params, jnp.asarray(ids))
    logits, out = jax.jit(logits_of)(emb)
    np.testing.assert_allclose(out.hidden_states, ref["hidden_states"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.attentions, ref["attentions"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(model.pool(params, out.hidden), ref["pooled"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(logits, ref["logits"], atol=ATOL, rtol=0)
    grad = jax.jit(jax.grad(lambda e: logits_of(e)[0][:, 1].sum()))(emb)
    np.testing.assert_allclose(grad, ref["grad"], atol=ATOL, rtol=0)
    assert np.abs(ref["grad"]).max() > 1e-2  # the comparison is not of near-zero numbers


def test_written_folder_equals_transformers_folder_and_loads_in_transformers(twin, tmp_path):
    from safetensors.numpy import load_file

    folder, torch_model, ids, types, valid = twin
    loaded = load_folder(folder)
    write_folder(tmp_path, loaded.model.config, loaded.params)
    original = load_file(str(folder / "model.safetensors"))
    written = load_file(str(tmp_path / "model.safetensors"))
    assert set(written) == set(original)
    for name in original:
        np.testing.assert_array_equal(written[name], original[name], err_msg=name)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    again = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        a = again(
            input_ids=torch.tensor(ids).long(),
            attention_mask=torch.tensor(valid).long(),
            token_type_ids=torch.tensor(types).long(),
        ).logits
        b = torch_model(
            input_ids=torch.tensor(ids).long(),
            attention_mask=torch.tensor(valid).long(),
            token_type_ids=torch.tensor(types).long(),
        ).logits
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_binary_cls_head_and_its_loss_are_bert_for_sequence_classifications(tmp_path):
    """A binary task's cls head gives HF's two logits, and the trainer's objective on them is
    HF's mean cross-entropy (J&W's class weight ignored), with the same gradients."""
    from jaxattn.core.protocol import Batch, encode, model_logits
    from jaxattn.models.pretrained import BertClsClassifier
    from jaxattn.training.objective import batch_loss

    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=24, max_position_embeddings=16, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(1)
    hf = transformers.BertForSequenceClassification(config)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(tmp_path, safe_serialization=True)
    loaded = load_folder(tmp_path)
    model = BertClsClassifier(loaded.model, task="binary", num_classes=2)
    head = {"classifier": loaded.params["classifier"]}
    params = {"bert": {k: v for k, v in loaded.params.items() if k != "classifier"}, "head": head}
    assert model.init(jax.random.key(0))["head"]["classifier"]["kernel"].shape == (16, 2)

    ids = np.array([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0], [2, 8, 8, 3, 0]], np.int32)
    valid = ids > 0
    labels = np.array([1, 0, 1])
    batch = Batch(tokens=jnp.asarray(ids), mask=jnp.asarray(valid & (ids > 3)),
                  valid=jnp.asarray(valid), labels=jnp.asarray(labels),
                  weights=jnp.ones(3), index=jnp.arange(3))

    def objective(p):
        logits = model_logits(model, p, encode(model, p, batch))
        return batch_loss(model, logits, batch, jnp.float32(5.0))[0], logits

    (loss, logits), grads = jax.value_and_grad(objective, has_aux=True)(params)
    out = hf(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(valid).long(),
             labels=torch.tensor(labels).long())
    out.loss.backward()
    np.testing.assert_allclose(logits, out.logits.detach().numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(float(loss), out.loss.item(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(grads["head"]["classifier"]["kernel"],
                               hf.classifier.weight.grad.numpy().T, atol=ATOL, rtol=0)
    assert np.abs(hf.classifier.weight.grad.numpy()).max() > 1e-3
