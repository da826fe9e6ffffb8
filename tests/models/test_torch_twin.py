"""Models against PyTorch twins built the way the published code builds them, same weights.

Skipped without the optional ``torch`` extra.
"""

import numpy as np
import pytest

from tests.helpers import toy_model

torch = pytest.importorskip("torch")


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float32)


def _torch_bilstm(p, emb, lengths):
    """torch.nn.LSTM(bidirectional) over packed sequences, as J&W's encoder runs it."""
    e, four_h = p["w_ih"].shape[1:]
    h = four_h // 4
    lstm = torch.nn.LSTM(e, h, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for d, suffix in ((0, ""), (1, "_reverse")):
            getattr(lstm, "weight_ih_l0" + suffix).copy_(_t(p["w_ih"][d]).T)
            getattr(lstm, "weight_hh_l0" + suffix).copy_(_t(p["w_hh"][d]).T)
            getattr(lstm, "bias_ih_l0" + suffix).copy_(_t(p["bias"][d]))
            getattr(lstm, "bias_hh_l0" + suffix).zero_()
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        emb, lengths, batch_first=True, enforce_sorted=False
    )
    out, _ = lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(
        out, batch_first=True, total_length=emb.shape[1]
    )
    return out


def _torch_cnn(p, emb, nonpad):
    outs = []
    for k in (1, 3, 5, 7):
        w = p[f"conv{k}"]
        conv = torch.nn.Conv1d(emb.shape[-1], w["kernel"].shape[-1], k, padding=k // 2)
        with torch.no_grad():
            conv.weight.copy_(_t(w["kernel"]).permute(2, 1, 0))
            conv.bias.copy_(_t(w["bias"]))
        outs.append(conv((emb * nonpad[..., None]).transpose(1, 2)).transpose(1, 2))
    return torch.relu(torch.cat(outs, dim=-1)) * nonpad[..., None]


def _torch_average(p, emb, nonpad):
    w = p["projection"]
    return torch.tanh(emb @ _t(w["kernel"]) + _t(w["bias"])) * nonpad[..., None]


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average"])
@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_binary_model_matches_pytorch_twin(encoder, attention):
    model, params, batch = toy_model("binary", encoder, attention)
    logits, attn = model.forward(params, batch)
    tokens = torch.tensor(np.asarray(batch.tokens), dtype=torch.long)
    nonpad = (tokens != 0).float()
    real = nonpad * (tokens != 2).float() * (tokens != 3).float()
    keep = nonpad.sum(1) > 0  # PyTorch packing cannot take empty rows
    tokens, nonpad, real = tokens[keep], nonpad[keep], real[keep]
    emb = torch.nn.functional.embedding(tokens, _t(params["embedder"]["embedding"]), padding_idx=0)
    emb = emb * nonpad[..., None]
    enc = params["text_encoder"]
    if encoder == "bilstm":
        hidden = _torch_bilstm(enc, emb, nonpad.sum(1).long())
    elif encoder == "cnn":
        hidden = _torch_cnn(enc, emb, nonpad)
    else:
        hidden = _torch_average(enc, emb, nonpad)
    att = params["attention"]
    if attention == "additive":
        scores = (
            torch.tanh(hidden @ _t(att["W1"]["kernel"]) + _t(att["W1"]["bias"]))
            @ _t(att["w2"]["kernel"])
        )[..., 0]
    else:
        scores = (hidden @ _t(att["w"]["kernel"]))[..., 0] / hidden.shape[-1] ** 0.5
    scores = scores.masked_fill(real == 0, float("-inf"))
    t_attn = torch.softmax(scores, dim=-1)
    context = (t_attn[..., None] * hidden).sum(1)
    dec = params["decoder_out"]
    t_logits = context @ _t(dec["kernel"]) + _t(dec["bias"])
    keep = keep.numpy()
    np.testing.assert_allclose(
        np.asarray(attn)[keep], t_attn.detach().numpy(), rtol=2e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(logits)[keep], t_logits.detach().numpy(), rtol=2e-5, atol=2e-6
    )
