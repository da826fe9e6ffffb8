"""The parameter layout of Jain & Wallace's PyTorch code (successar/AttentionExplanation), both ways.

Their ``Model.save_values`` writes two ``state_dict``s: ``enc.th`` of the encoder and ``dec.th``
of the ``AttnDecoder``. For the single-text (binary / multi-class) models they hold:

    enc.th  embedding.weight [V, E]
            rnn:      rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l0[_reverse]  ([4h, E], [4h, h], [4h])
            cnn:      convolutions.{i}.weight [F, E, k], convolutions.{i}.bias [F]  (kernels 1, 3, 5, 7)
            average:  projection.weight [h, E], projection.bias [h]
    dec.th  linear_1.weight [C, H], linear_1.bias [C]
            tanh:     attention.attn1.weight [H/2, H], attention.attn1.bias [H/2],
                      attention.attn2.weight [1, H/2]
            dot:      attention.attn1.weight [1, H]

This module maps those (as numpy arrays, no torch needed) to jaxattn's params pytree and back.
PyTorch's LSTM has two biases whose sum is jaxattn's one; exporting writes the sum as ``bias_ih``
and zeros as ``bias_hh``, so export then import gives the same bits.
"""

from __future__ import annotations

import numpy as np

from jaxattn.core.errors import JaxattnError

KERNELS = (1, 3, 5, 7)  # jaxattn's CNN; J&W's default ``cnn(1,3,5,7)``
_DIRECTIONS = ("", "_reverse")


class CheckpointError(JaxattnError):
    """A checkpoint that cannot be converted; the message names the file and key."""


def detect(enc: dict, dec: dict) -> tuple[str, str]:
    """(jaxattn encoder, attention) names of a J&W state-dict pair, from its keys."""
    if "rnn.weight_ih_l0" in enc:
        encoder = "bilstm"
    elif "convolutions.0.weight" in enc:
        encoder = "cnn"
    elif "projection.weight" in enc:
        encoder = "average"
    else:
        raise CheckpointError(
            "enc.th: no rnn.weight_ih_l0, convolutions.0.weight or projection.weight; not an "
            "encoder of the J&W code (rnn, cnn or average)"
        )
    # tanh attention's attn1 has a bias, dot's has none
    tanh = "attention.attn2.weight" in dec or "attention.attn1.bias" in dec
    attention = "additive" if tanh else "dot"
    return encoder, attention


def _take(sd: dict, name: str, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """``sd[key]`` as float32, checked to exist and to have ``shape`` (None: any size)."""
    if key not in sd:
        raise CheckpointError(f"{name}: key {key} missing")
    value = np.asarray(sd[key])
    if value.ndim != len(shape) or any(w is not None and w != g for w, g in
                                       zip(shape, value.shape)):
        want = "[" + ", ".join("?" if w is None else str(w) for w in shape) + "]"
        raise CheckpointError(f"{name}: key {key} has shape {list(value.shape)}, expected {want}")
    if not np.issubdtype(value.dtype, np.floating):
        raise CheckpointError(f"{name}: key {key} has dtype {value.dtype}, expected floats")
    return value.astype(np.float32)


def _no_extra(sd: dict, name: str, used: set[str]) -> None:
    extra = sorted(set(sd) - used)
    if extra:
        raise CheckpointError(
            f"{name}: key {extra[0]} is not part of a J&W single-text model "
            f"({len(extra)} unexpected key{'s' if len(extra) > 1 else ''})"
        )


def sizes(enc: dict, dec: dict) -> dict:
    """The model settings a state-dict pair implies: ``encoder``, ``attention``, ``vocab_size``,
    ``embed_dim``, ``hidden_size`` / ``cnn_filters`` and ``num_outputs``."""
    encoder, attention = detect(enc, dec)
    emb = _take(enc, "enc.th", "embedding.weight", (None, None))
    out = {"encoder": encoder, "attention": attention, "vocab_size": emb.shape[0],
           "embed_dim": emb.shape[1]}
    if encoder == "bilstm":
        out["hidden_size"] = _take(enc, "enc.th", "rnn.weight_hh_l0", (None, None)).shape[1]
    elif encoder == "cnn":
        out["cnn_filters"] = _take(enc, "enc.th", "convolutions.0.weight", (None, None, None)).shape[0]
    else:
        out["hidden_size"] = _take(enc, "enc.th", "projection.weight", (None, None)).shape[0]
    out["num_outputs"] = _take(dec, "dec.th", "linear_1.weight", (None, None)).shape[0]
    return out


def to_params(enc: dict, dec: dict) -> dict:
    """jaxattn params (nested dicts of float32 numpy arrays) from J&W ``enc`` / ``dec`` state
    dicts (name -> array); a missing, unexpected or misshapen key is a :class:`CheckpointError`."""
    s = sizes(enc, dec)
    v, e = s["vocab_size"], s["embed_dim"]
    used_enc = {"embedding.weight"}
    params: dict = {"embedder": {"embedding": _take(enc, "enc.th", "embedding.weight", (v, e))}}
    if s["encoder"] == "bilstm":
        h = s["hidden_size"]
        w_ih, w_hh, bias = [], [], []
        for d in _DIRECTIONS:
            keys = [f"rnn.{n}_l0{d}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            used_enc.update(keys)
            w_ih.append(_take(enc, "enc.th", keys[0], (4 * h, e)).T)
            w_hh.append(_take(enc, "enc.th", keys[1], (4 * h, h)).T)
            bias.append(_take(enc, "enc.th", keys[2], (4 * h,))
                        + _take(enc, "enc.th", keys[3], (4 * h,)))
        encoder = {"w_ih": np.stack(w_ih), "w_hh": np.stack(w_hh), "bias": np.stack(bias)}
        size = 2 * h
    elif s["encoder"] == "cnn":
        f = s["cnn_filters"]
        encoder = {}
        for i, k in enumerate(KERNELS):
            wk, bk = f"convolutions.{i}.weight", f"convolutions.{i}.bias"
            used_enc.update((wk, bk))
            w = _take(enc, "enc.th", wk, (f, e, k))
            encoder[f"conv{k}"] = {"kernel": np.ascontiguousarray(w.transpose(2, 1, 0)),
                                   "bias": _take(enc, "enc.th", bk, (f,))}
        size = len(KERNELS) * f
    else:
        h = s["hidden_size"]
        used_enc.update(("projection.weight", "projection.bias"))
        encoder = {"projection": {"kernel": _take(enc, "enc.th", "projection.weight", (h, e)).T,
                                  "bias": _take(enc, "enc.th", "projection.bias", (h,))}}
        size = h
    _no_extra(enc, "enc.th", used_enc)
    params["text_encoder"] = encoder

    c = s["num_outputs"]
    used_dec = {"linear_1.weight", "linear_1.bias"}
    if s["attention"] == "additive":
        used_dec.update(("attention.attn1.weight", "attention.attn1.bias", "attention.attn2.weight"))
        params["attention"] = {
            "W1": {"kernel": _take(dec, "dec.th", "attention.attn1.weight", (size // 2, size)).T,
                   "bias": _take(dec, "dec.th", "attention.attn1.bias", (size // 2,))},
            "w2": {"kernel": _take(dec, "dec.th", "attention.attn2.weight", (1, size // 2)).T},
        }
    else:
        used_dec.add("attention.attn1.weight")
        params["attention"] = {
            "w": {"kernel": _take(dec, "dec.th", "attention.attn1.weight", (1, size)).T}}
    params["decoder_out"] = {"kernel": _take(dec, "dec.th", "linear_1.weight", (c, size)).T,
                             "bias": _take(dec, "dec.th", "linear_1.bias", (c,))}
    _no_extra(dec, "dec.th", used_dec)
    return _contiguous(params)


def from_params(params: dict, encoder: str) -> tuple[dict, dict]:
    """(enc, dec) J&W state dicts (name -> float32 numpy array) of jaxattn ``params`` of a
    single-text model with ``encoder`` (``bilstm``, ``cnn`` or ``average``)."""
    p = _to_numpy(params)
    if "query_encoder" in p:
        raise CheckpointError("pair models (NLI, QA) have no J&W single-text layout")
    enc = {"embedding.weight": p["embedder"]["embedding"]}
    te = p["text_encoder"]
    if encoder == "bilstm":
        for i, d in enumerate(_DIRECTIONS):
            enc[f"rnn.weight_ih_l0{d}"] = te["w_ih"][i].T
            enc[f"rnn.weight_hh_l0{d}"] = te["w_hh"][i].T
            enc[f"rnn.bias_ih_l0{d}"] = te["bias"][i]
            enc[f"rnn.bias_hh_l0{d}"] = np.zeros_like(te["bias"][i])
    elif encoder == "cnn":
        for i, k in enumerate(KERNELS):
            enc[f"convolutions.{i}.weight"] = te[f"conv{k}"]["kernel"].transpose(2, 1, 0)
            enc[f"convolutions.{i}.bias"] = te[f"conv{k}"]["bias"]
    elif encoder == "average":
        enc["projection.weight"] = te["projection"]["kernel"].T
        enc["projection.bias"] = te["projection"]["bias"]
    else:
        raise CheckpointError(f"model.encoder={encoder}: the J&W code has no such encoder")
    att = p["attention"]
    if "W1" in att:
        dec = {"attention.attn1.weight": att["W1"]["kernel"].T,
               "attention.attn1.bias": att["W1"]["bias"],
               "attention.attn2.weight": att["w2"]["kernel"].T}
    else:
        dec = {"attention.attn1.weight": att["w"]["kernel"].T}
    dec["linear_1.weight"] = p["decoder_out"]["kernel"].T
    dec["linear_1.bias"] = p["decoder_out"]["bias"]
    return _contiguous(enc), _contiguous(dec)


def _to_numpy(tree):
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree, np.float32)


def _contiguous(tree):
    if isinstance(tree, dict):
        return {k: _contiguous(v) for k, v in tree.items()}
    return np.ascontiguousarray(tree)
