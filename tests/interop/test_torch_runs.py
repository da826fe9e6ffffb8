"""J&W PyTorch checkpoints in and out: modules built as the published code builds them
(same attribute names, so their own ``state_dict`` keys), imported, and compared with a torch
forward pass; export then import gives the same bytes; bad checkpoints are one-line errors."""

import json
import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.cli import main
from jaxattn.config import load_config
from jaxattn.data.batching import eval_batches
from jaxattn.data.prepare import prepare
from jaxattn.runs.run import load_run

torch = pytest.importorskip("torch")
nn = torch.nn


class EncoderRNN(nn.Module):  # successar/AttentionExplanation model/modules/Encoder.py
    def __init__(self, vocab_size, embed_size, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.rnn = nn.LSTM(embed_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, emb, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(emb, lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=0,
                                                total_length=emb.shape[1])[0]


class EncoderCNN(nn.Module):
    def __init__(self, vocab_size, embed_size, hidden_size, kernel_sizes=(1, 3, 5, 7)):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.convolutions = nn.ModuleDict({str(i): nn.Conv1d(embed_size, hidden_size, k,
                                                             padding=(k - 1) // 2)
                                           for i, k in enumerate(kernel_sizes)})

    def forward(self, emb, lengths):
        x = emb.transpose(1, 2)
        outs = [self.convolutions[i](x) for i in sorted(self.convolutions.keys())]
        return torch.relu(torch.cat(outs, dim=1)).transpose(1, 2)


class EncoderAverage(nn.Module):
    def __init__(self, vocab_size, embed_size, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        self.projection = nn.Linear(embed_size, hidden_size)

    def forward(self, emb, lengths):
        return torch.tanh(self.projection(emb))


class TanhAttention(nn.Module):  # model/modules/Attention.py
    def __init__(self, hidden_size):
        super().__init__()
        self.attn1 = nn.Linear(hidden_size, hidden_size // 2)
        self.attn2 = nn.Linear(hidden_size // 2, 1, bias=False)

    def forward(self, hidden):
        return self.attn2(torch.tanh(self.attn1(hidden))).squeeze(-1)


class DotAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.attn1 = nn.Linear(hidden_size, 1, bias=False)
        self.hidden_size = hidden_size

    def forward(self, hidden):
        return (self.attn1(hidden) / self.hidden_size**0.5).squeeze(-1)


class AttnDecoder(nn.Module):  # model/modules/Decoder.py
    def __init__(self, hidden_size, attention, output_size=1):
        super().__init__()
        self.linear_1 = nn.Linear(hidden_size, output_size)
        self.attention = attention(hidden_size)

    def forward(self, hidden, masks):
        attn = torch.softmax(self.attention(hidden).masked_fill(masks, -float("inf")), dim=-1)
        return self.linear_1((attn.unsqueeze(-1) * hidden).sum(1)), attn


ENCODERS = {"bilstm": (EncoderRNN, 6, 12), "cnn": (EncoderCNN, 3, 12), "average": (EncoderAverage, 10, 10)}


def _jw_model(encoder, attention, vocab_size, seed=0):
    torch.manual_seed(seed)
    cls, hidden, size = ENCODERS[encoder]
    enc = cls(vocab_size, 8, hidden)
    dec = AttnDecoder(size, TanhAttention if attention == "additive" else DotAttention)
    with torch.no_grad():  # trained-looking biases (bias_hh included), not torch's zeros
        for p in list(enc.parameters()) + list(dec.parameters()):
            p.add_(0.1 * torch.randn_like(p))
        enc.embedding.weight[0].zero_()
    return enc, dec


def _torch_forward(enc, dec, tokens):
    """Logits, attention and d sum(sigmoid) / d embeddings, as J&W's BatchHolder runs a batch."""
    tokens = torch.tensor(tokens, dtype=torch.long)
    lengths = (tokens != 0).sum(1)
    masks = torch.ones_like(tokens, dtype=torch.bool)
    for i, n in enumerate(lengths.tolist()):
        masks[i, 1 : n - 1] = False  # [1] + [0] * (len - 2) + [1] * (rem + 1)
    emb = enc.embedding(tokens).detach().requires_grad_(True)
    logits, attn = dec(enc(emb, lengths), masks)
    (grad,) = torch.autograd.grad(torch.sigmoid(logits).sum(), emb)
    return logits.detach().numpy(), attn.detach().numpy(), grad.numpy()


def _save_jw_folder(folder, enc, dec, itos):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(enc.state_dict(), folder / "enc.th")
    torch.save(dec.state_dict(), folder / "dec.th")
    # Their vocabulary is a pickled Transparency Vectorizer: pickled here from a stand-in module
    # of that name, and read back without it.
    mod = types.ModuleType("Transparency.preprocess.vectorizer")

    class Vectorizer:
        pass

    Vectorizer.__module__ = mod.__name__
    Vectorizer.__qualname__ = "Vectorizer"
    mod.Vectorizer = Vectorizer
    names = ("Transparency", "Transparency.preprocess", mod.__name__)
    for name in names[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[mod.__name__] = mod
    try:
        vec = Vectorizer()
        vec.idx2word = dict(enumerate(itos))
        vec.word2idx = {w: i for i, w in enumerate(itos)}
        vec.embeddings = np.zeros((len(itos), 2), np.float32)
        (folder / "vec.p").write_bytes(pickle.dumps(vec))
    finally:
        for name in names:
            del sys.modules[name]
    return folder / "vec.p"


@pytest.fixture(scope="module")
def synthetic_itos():
    cfg = load_config(None, ["data.name=synthetic", "data.limit_train=200"])
    return ["<0>", "<UNK>", "<SOS>", "<EOS>"] + prepare(cfg.data).vocab.itos[4:]


def _import(tmp_path, folder, vocab, out, *extra):
    return main(["import-torch", "--checkpoint", str(folder), "--vocab", str(vocab),
                 "--set", "data.name=synthetic", "--set", "data.limit_train=200", *extra,
                 "--out", str(out)])


@pytest.mark.parametrize("encoder,attention", [("bilstm", "additive"), ("bilstm", "dot"),
                                                ("cnn", "additive"), ("average", "dot")])
def test_imported_model_matches_torch_forward(tmp_path, synthetic_itos, encoder, attention):
    enc, dec = _jw_model(encoder, attention, len(synthetic_itos))
    vocab = _save_jw_folder(tmp_path / "jw", enc, dec, synthetic_itos)
    assert _import(tmp_path, tmp_path / "jw", vocab, tmp_path / "run") == 0
    run = load_run(tmp_path / "run")
    assert run.config.model.encoder == encoder and run.config.model.attention == attention
    model, params = run.model, run.params
    batch = next(eval_batches(run.prepare_data().splits["test"], 16))
    t = int(np.asarray(batch.valid).sum(1).max())

    def prob(embedded):
        enc_ = model.encode_embedded(params, batch, embedded)
        return model.decode(params, enc_, model.attend(params, enc_))[:, 0]

    embedded = model.embed(params, batch.tokens)
    logits = prob(embedded)
    attn = model.attend(params, model.encode_embedded(params, batch, embedded))
    grad = jax.grad(lambda e: jax.nn.sigmoid(prob(e)).sum())(embedded)
    want_logits, want_attn, want_grad = _torch_forward(enc, dec, np.asarray(batch.tokens)[:, :t])
    valid = np.asarray(batch.valid)[:, :t]
    np.testing.assert_allclose(np.asarray(logits), want_logits[:, 0], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(attn)[:, :t], want_attn, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad)[:, :t] * valid[..., None],
                               want_grad * valid[..., None], atol=1e-5, rtol=1e-5)


def test_export_then_import_round_trips_bit_for_bit(tmp_path, synthetic_itos):
    enc, dec = _jw_model("bilstm", "additive", len(synthetic_itos), seed=1)
    vocab = _save_jw_folder(tmp_path / "jw", enc, dec, synthetic_itos)
    assert _import(tmp_path, tmp_path / "jw", vocab, tmp_path / "run") == 0
    assert main(["export-torch", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "x")]) == 0
    # The exported files load into the published modules as they are (strict keys and shapes).
    twin_enc, twin_dec = _jw_model("bilstm", "additive", len(synthetic_itos), seed=2)
    twin_enc.load_state_dict(torch.load(tmp_path / "x" / "enc.th"), strict=True)
    twin_dec.load_state_dict(torch.load(tmp_path / "x" / "dec.th"), strict=True)
    tokens = np.asarray([[2, 5, 9, 7, 3, 0], [2, 11, 3, 0, 0, 0]])
    for a, b in zip(_torch_forward(enc, dec, tokens), _torch_forward(twin_enc, twin_dec, tokens)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert _import(tmp_path, tmp_path / "x", tmp_path / "x" / "vocab.json", tmp_path / "run2") == 0
    assert (tmp_path / "run" / "params.msgpack").read_bytes() == (
        tmp_path / "run2" / "params.msgpack").read_bytes()
    assert (tmp_path / "run" / "vocab.json").read_bytes() == (
        tmp_path / "run2" / "vocab.json").read_bytes()


def _damage(folder, file, edit):
    sd = torch.load(folder / file)
    edit(sd)
    torch.save(sd, folder / file)


@pytest.mark.parametrize("case,expected", [
    ("missing", "dec.th: key attention.attn2.weight missing"),
    ("shape", "enc.th: key rnn.weight_hh_l0_reverse has shape [24, 5], expected [24, 6]"),
    ("extra", "dec.th: key regularizer_attention.attn1.weight is not part of"),
    ("garbage", "enc.th: not a PyTorch state dict"),
    ("vocab", "words, but"),
])
def test_bad_checkpoints_are_one_line_errors(tmp_path, capsys, synthetic_itos, case, expected):
    enc, dec = _jw_model("bilstm", "additive", len(synthetic_itos))
    folder = tmp_path / "jw"
    vocab = _save_jw_folder(folder, enc, dec, synthetic_itos)
    if case == "missing":
        _damage(folder, "dec.th", lambda sd: sd.pop("attention.attn2.weight"))
    elif case == "shape":
        _damage(folder, "enc.th", lambda sd: sd.update(
            {"rnn.weight_hh_l0_reverse": torch.zeros(24, 5)}))
    elif case == "extra":
        _damage(folder, "dec.th", lambda sd: sd.update(
            {"regularizer_attention.attn1.weight": torch.zeros(1, 12)}))
    elif case == "garbage":
        (folder / "enc.th").write_bytes(b"not a checkpoint")
    else:
        vocab = tmp_path / "short.json"
        vocab.write_text('["<0>", "<UNK>", "<SOS>", "<EOS>", "a"]')
    assert _import(tmp_path, folder, vocab, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert str(folder) in err or str(vocab) in err
    assert not (tmp_path / "run").exists()


def test_missing_key_names_file_and_key(tmp_path, capsys, synthetic_itos):
    enc, dec = _jw_model("bilstm", "additive", len(synthetic_itos))
    folder = tmp_path / "jw"
    vocab = _save_jw_folder(folder, enc, dec, synthetic_itos)
    _damage(folder, "enc.th", lambda sd: sd.pop("rnn.bias_hh_l0_reverse"))
    assert _import(tmp_path, folder, vocab, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert f"{folder}/enc.th: key rnn.bias_hh_l0_reverse missing" in err, err


def test_export_refuses_a_transformer_run(tmp_path):
    from jaxattn.interop.jw_layout import CheckpointError, from_params

    with pytest.raises(CheckpointError, match="model.encoder=transformer"):
        from_params({"embedder": {"embedding": jnp.zeros((5, 2))}, "text_encoder": {},
                     "attention": {}, "decoder_out": {}}, "transformer")


def test_export_refuses_an_out_that_is_the_run(tmp_path, capsys, synthetic_itos):
    enc, dec = _jw_model("average", "dot", len(synthetic_itos))
    vocab = _save_jw_folder(tmp_path / "jw", enc, dec, synthetic_itos)
    run = tmp_path / "run"
    assert _import(tmp_path, tmp_path / "jw", vocab, run) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    (tmp_path / "alias").symlink_to(run)
    for out in (run, tmp_path / "alias", run / "torch"):
        assert main(["export-torch", "--run", str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out {out}: is (inside) the run" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert load_run(run).vocab.itos[4:] == synthetic_itos[4:]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_checkpoints_import_as_float32(tmp_path, synthetic_itos, dtype):
    enc, dec = _jw_model("average", "dot", len(synthetic_itos))
    half = getattr(torch, dtype)
    for name, cast in (("half", lambda v: v.to(half)), ("rounded", lambda v: v.to(half).float())):
        vocab = _save_jw_folder(tmp_path / name, enc, dec, synthetic_itos)
        for file in ("enc.th", "dec.th"):
            _damage(tmp_path / name, file,
                    lambda sd, cast=cast: sd.update({k: cast(v) for k, v in sd.items()}))
        assert _import(tmp_path, tmp_path / name, vocab, tmp_path / f"run-{name}") == 0
    # The half-precision file gives exactly the parameters of its values written in float32.
    assert (tmp_path / "run-half" / "params.msgpack").read_bytes() == (
        tmp_path / "run-rounded" / "params.msgpack").read_bytes()


def test_sparse_tensors_are_one_line_errors(tmp_path, capsys, synthetic_itos):
    enc, dec = _jw_model("average", "dot", len(synthetic_itos))
    folder = tmp_path / "jw"
    vocab = _save_jw_folder(folder, enc, dec, synthetic_itos)
    _damage(folder, "enc.th", lambda sd: sd.update(
        {"embedding.weight": sd["embedding.weight"].to_sparse()}))
    assert _import(tmp_path, folder, vocab, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder}/enc.th: key embedding.weight is a sparse" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("mapping,needle", [
    ({"<0>": "<UNK>", "<UNK>": "a"}, "'<0>': '<UNK>'"),
    ({"<0>": 0.0, "<UNK>": 1.0, "<SOS>": 2.0, "<EOS>": 3.0}, "'<0>': 0.0"),
    ({"0": "<0>", "1": 1}, "expected word -> whole-number id or id -> word"),
])
def test_json_vocabularies_of_other_mappings_are_one_line_errors(tmp_path, mapping, needle):
    from jaxattn.interop.jw_layout import CheckpointError
    from jaxattn.interop.torch_runs import read_vocab

    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(mapping))
    with pytest.raises(CheckpointError) as err:
        read_vocab(path)
    assert str(err.value).startswith(f"{path}: ") and needle in str(err.value), err.value
    assert "\n" not in str(err.value)
