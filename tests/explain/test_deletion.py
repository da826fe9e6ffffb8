"""Deleting tokens and whole words on a tiny BERT with a real WordPiece tokenizer, against texts
re-tokenized without the deleted word and run one by one; packed piece leave-one-out against
the previous implementation (every position deleted from every row)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.core.metrics import tvd
from jaxattn.core.protocol import delete_position, delete_token, model_logits, predict_logits
from jaxattn.data.batching import EncodedSplit, make_batch
from jaxattn.data.tokenizers import WordPieceTokenizer
from jaxattn.explain import deletion, faithfulness, importance
from jaxattn.models.pretrained import BertAttentionClassifier, BertClsClassifier, load_folder
from tests.helpers import perturbed, tiny_bert_folder

WORDS = ["the", "film", "was", "charming", "and", "script", "simply", "dull", "a", "plot",
         "wonderfully", "unbelievable"]
SENTENCES = [
    ["the", "charming", "film", "was", "simply", "dull"],
    ["wonderfully", "unbelievable", "plot"],
    ["a", "plot"],
    ["the", "film", "was", "charming", "and", "the", "script", "was", "simply", "wonderfully",
     "dull", "a", "plot", "and", "unbelievable"],
]
WIDTH = 48  # every row, whole or shortened, padded to this: one compilation per model


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(tokenizer, {head: (model, params)}) of a tiny random BERT, parameters perturbed so that
    deletions change the output visibly."""
    loaded = load_folder(tiny_bert_folder(tmp_path_factory.mktemp("tiny"), WORDS, hidden=16))
    tokenizer = WordPieceTokenizer(loaded.tokenizer)
    models = {}
    for head, model in (("attention", BertAttentionClassifier(loaded.model, task="multiclass",
                                                                   num_classes=3)),
                        ("cls", BertClsClassifier(loaded.model, task="binary"))):
        params = model.init(jax.random.key(0))
        params["bert"] = {**loaded.params, **{k: v for k, v in params["bert"].items()
                                              if k not in loaded.params}}
        models[head] = (model, perturbed(params, seed=2, scale=0.3))
    return tokenizer, models


def _batch(tokenizer, sentences, pad_rows=1):
    pieces = [tokenizer.encode_words(words) for words in sentences]
    split = EncodedSplit([p.ids for p in pieces], np.zeros(len(pieces), np.int32),
                         word_index=[p.word_index for p in pieces])
    return make_batch(split, range(len(pieces)), len(pieces) + pad_rows, buckets=(WIDTH,))


@functools.cache
def _probs_fn(model):
    return jax.jit(lambda params, batch: model.probs(predict_logits(model, params, batch)))


def _probs_of_text(tokenizer, model, params, words):
    """<float32>[K] the output for the text ``words`` tokenized on its own (one row)."""
    return np.asarray(_probs_fn(model)(params, _batch(tokenizer, [words], pad_rows=0)))[0]


@functools.partial(jax.jit, static_argnames=("model", "chunk"))
def previous_leave_one_out(model, params, batch, chunk=4):
    """The implementation this module replaces: every position deleted from every row."""
    inputs, encoder, _ = deletion.per_token_inputs(model, params, batch)

    def output(b, x):
        return model.probs(model_logits(model, params, encoder(b, x)))

    probs = output(batch, inputs)
    steps = batch.tokens.shape[1]
    position = jnp.arange(steps)[None]
    first = jnp.min(jnp.where(batch.mask, position, steps))
    last = jnp.max(jnp.where(batch.mask, position, -1))
    plain = batch.replace(rationale=None)

    def deleted_probs(position):
        return output(delete_token(plain, position), delete_position(inputs, position))

    def chunk_probs(positions):
        return jax.lax.cond(
            (positions[0] <= last) & (positions[-1] >= first),
            lambda: jax.vmap(deleted_probs)(positions),
            lambda: jnp.broadcast_to(probs, positions.shape + probs.shape),
        )

    chunks = -(-steps // chunk)
    positions = jnp.minimum(jnp.arange(chunks * chunk), steps - 1).reshape(chunks, chunk)
    changed = jax.lax.map(chunk_probs, positions).reshape(chunks * chunk, *probs.shape)[:steps]
    return jnp.where(batch.mask, tvd(changed, probs[None]).T, 0.0)


def test_the_batch_carries_each_pieces_word(bert):
    tokenizer, _ = bert
    batch = _batch(tokenizer, SENTENCES[:2])
    names = tokenizer.piece_names(np.asarray(batch.tokens[1]))
    assert names[:9] == ["[CLS]", "won", "##der", "##ful", "##ly", "unb", "##eli", "##eva",
                         "##ble"]
    assert np.asarray(batch.word_index[1, :11]).tolist() == [-1, 0, 0, 0, 0, 1, 1, 1, 1, 2, -1]
    assert np.all(np.asarray(batch.word_index)[~np.asarray(batch.mask)] == -1)
    assert np.all(np.asarray(batch.word_index[2]) == -1)  # the padding row


@pytest.mark.parametrize("head", ["attention", "cls"])
def test_word_leave_one_out_is_the_text_re_tokenized_without_the_word(bert, head):
    tokenizer, models = bert
    model, params = models[head]
    batch = _batch(tokenizer, SENTENCES)
    got = np.asarray(importance.leave_one_out_words(model, params, batch, chunk=1))
    word_index, mask = np.asarray(batch.word_index), np.asarray(batch.mask)
    assert np.all(got[~mask] == 0) and np.all(got[-1] == 0)
    several, wants = 0, []
    for row, words in enumerate(SENTENCES):
        full = _probs_of_text(tokenizer, model, params, words)
        for w in range(len(words)):
            pieces = np.flatnonzero(word_index[row] == w)
            several += len(pieces) > 1
            shorter = words[:w] + words[w + 1:]
            want = 0.5 * np.abs(_probs_of_text(tokenizer, model, params, shorter) - full).sum()
            assert got[row, pieces[0]] == pytest.approx(want, abs=1e-6)
            assert np.all(got[row, pieces[1:]] == 0)  # the score sits on the first piece
            wants.append(want)
    assert several >= 6
    assert np.median(wants) > 1e-3  # the check compares something
    # The per-word sum rule gives each word its own deletion.
    spread = np.asarray(deletion.spread_over_units(jnp.asarray(got), deletion.word_units(batch)))
    first = np.asarray(deletion.first_of_unit(deletion.word_units(batch)))
    for row in range(len(SENTENCES)):
        for w in range(len(SENTENCES[row])):
            pieces = word_index[row] == w
            np.testing.assert_array_equal(spread[row, pieces], got[row, pieces & first[row]][0])


@pytest.mark.parametrize("head", ["attention", "cls"])
def test_piece_leave_one_out_equals_the_previous_implementation(bert, head):
    """Very different lengths (2 to 37 pieces): only each row's own pieces are deleted, and
    every chunking gives the same numbers as deleting every position from every row."""
    tokenizer, models = bert
    model, params = models[head]
    batch = _batch(tokenizer, SENTENCES)
    want = np.asarray(previous_leave_one_out(model, params, batch, chunk=4))
    for chunk in (1, 3):
        got = np.asarray(importance.leave_one_out(model, params, batch, chunk=chunk))
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.median(want[np.asarray(batch.mask)]) > 1e-3


def test_piece_leave_one_out_is_the_text_without_the_piece(bert):
    tokenizer, models = bert
    model, params = models["attention"]
    batch = _batch(tokenizer, SENTENCES[:2])
    got = np.asarray(importance.leave_one_out(model, params, batch))
    for row, words in enumerate(SENTENCES[:2]):
        pieces = tokenizer.encode_words(words)
        full = _probs_of_text(tokenizer, model, params, words)
        for pos in range(1, len(pieces.ids) - 1):
            split = EncodedSplit([np.delete(pieces.ids, pos)], np.zeros(1, np.int32),
                                 word_index=[np.delete(pieces.word_index, pos)])
            changed = np.asarray(_probs_fn(model)(params, make_batch(split, [0],
                                                                     buckets=(WIDTH,))))[0]
            assert got[row, pos] == pytest.approx(0.5 * np.abs(changed - full).sum(), abs=1e-6)


def test_unit_deletion_of_a_word_vocabulary_is_leave_one_out(bert):
    """Words of one token each: word leave-one-out is piece leave-one-out."""
    tokenizer, models = bert
    model, params = models["cls"]
    batch = _batch(tokenizer, [["the", "film", "was", "dull"], ["a", "plot"]])
    np.testing.assert_array_equal(
        np.asarray(importance.leave_one_out_words(model, params, batch)),
        np.asarray(importance.leave_one_out(model, params, batch)))


def test_eraser_by_words_matches_re_tokenized_texts(bert):
    tokenizer, models = bert
    model, params = models["attention"]
    sentences = [SENTENCES[0], SENTENCES[3]]
    batch = _batch(tokenizer, sentences)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, *batch.tokens.shape)).astype(np.float32)
    scores[1] = np.round(scores[1])  # ties: the earlier word first
    comp, suff, p_full = jax.device_get(faithfulness.comprehensiveness_sufficiency(
        model, params, batch, scores, unit="word"))
    word_index = np.asarray(batch.word_index)
    bins = np.asarray(faithfulness.BINS, np.float32)
    for row, words in enumerate(sentences):
        full = _probs_of_text(tokenizer, model, params, words)
        y = int(np.argmax(full))
        assert p_full[row] == pytest.approx(full[y], abs=1e-6)
        for m in range(len(scores)):
            word_scores = [scores[m, row][word_index[row] == w].sum() for w in range(len(words))]
            order = sorted(range(len(words)), key=lambda w: (-word_scores[w], w))
            for b, frac in enumerate(bins):
                size = max(1, int(np.floor(frac * np.float32(len(words)))))
                chosen = set(order[:size])
                without = [x for w, x in enumerate(words) if w not in chosen]
                only = [x for w, x in enumerate(words) if w in chosen]
                p_without = _probs_of_text(tokenizer, model, params, without)[y]
                p_only = _probs_of_text(tokenizer, model, params, only)[y]
                assert comp[m, row, b] == pytest.approx(full[y] - p_without, abs=1e-6)
                assert suff[m, row, b] == pytest.approx(full[y] - p_only, abs=1e-6)
    assert np.all(comp[:, -1] == 0) and np.all(suff[:, -1] == 0)  # the padding row


def test_eraser_units_agree_on_single_token_words(bert):
    tokenizer, models = bert
    model, params = models["cls"]
    batch = _batch(tokenizer, [["the", "film", "was", "dull"], ["a", "plot", "and", "the"]])
    scores = np.random.default_rng(1).normal(size=(1, *batch.tokens.shape)).astype(np.float32)
    by_word = faithfulness.comprehensiveness_sufficiency(model, params, batch, scores, unit="word")
    by_piece = faithfulness.comprehensiveness_sufficiency(model, params, batch, scores)
    for a, b in zip(by_word, by_piece):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert faithfulness.resolve_unit("auto", np.asarray(batch.word_index)) == "piece"
    pieced = _batch(tokenizer, SENTENCES[:1])
    assert faithfulness.resolve_unit("auto", np.asarray(pieced.word_index)) == "word"
    assert faithfulness.resolve_unit("piece", np.asarray(pieced.word_index)) == "piece"
    with pytest.raises(ValueError, match="not one of"):
        faithfulness.resolve_unit("letters", None)
