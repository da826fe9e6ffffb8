"""Tokenizers: a text's words -> the ids a model reads, and the word each id belongs to.

A data set's examples are words (:class:`~jaxattn.data.dataset.Example` ``tokens``); a model
reads pieces. :class:`TextTokenizer` is what batching needs from the step between:

    pieces = tokenizer.encode_words(words, query)   # Pieces(ids, word_index, token_types)

``word_index[t]`` is the word piece ``t`` belongs to (an index into ``words``; a pair's query
words follow, ``len(words) + j``) and ``-1`` for boundary markers ([CLS], [SEP], SOS, EOS). The
masks of a batch come from it (:func:`jaxattn.data.batching.make_batch`): ``mask`` = pieces of
real words, ``valid`` = every input position. Two implementations:

* :class:`~jaxattn.data.vocab.Vocab`, the word vocabulary: each word one piece, ``SOS words
  EOS``; a pair's query is a second sequence (``joins_pairs`` False), encoded on its own.
* :class:`WordPieceTokenizer`, over a ``tokenizers.Tokenizer`` (BERT's WordPiece): the words are
  given to it pre-tokenized, so every piece maps back to one of the example's words; a pair is
  one sequence ``[CLS] text [SEP] query [SEP]`` with token types 0 then 1 (``joins_pairs``), as
  BERT reads pairs. Rows longer than ``max_length`` pieces are truncated (longest text first).

Scores per piece become scores per word by :func:`sum_over_words` (the sum of the word's
pieces); that is the rule every per-word view (heatmaps, rationales, plausibility, exports) uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer

from jaxattn.data.dataset import DataError


@dataclasses.dataclass(frozen=True)
class Pieces:
    """One encoded row.

    Attributes:
      ids: <int32>[N] piece ids, boundary markers included.
      word_index: <int32>[N] the word of each piece, -1 for boundary markers.
      token_types: <int32>[N] 0 for the text (and its markers), 1 for a joined query.
    """

    ids: np.ndarray
    word_index: np.ndarray
    token_types: np.ndarray


@runtime_checkable
class TextTokenizer(Protocol):
    """What batching needs from a tokenizer (see the module docstring)."""

    #: True: a pair is one sequence (query after the text, token types 1); False: the query is
    #: encoded as its own sequence (``encode_words(query)``) for a model that reads it apart.
    joins_pairs: bool

    def __len__(self) -> int:
        """The number of ids (the embedding table's rows)."""

    def encode_words(self, words: Sequence[str], query: Sequence[str] | None = None) -> Pieces:
        """The pieces of ``words`` (and of ``query`` joined after it, when ``joins_pairs``)."""

    def piece_names(self, ids: Sequence[int]) -> list[str]:
        """How each id is written (``##ing`` for a WordPiece continuation)."""


def word_index_of(encoding, first_words: int | None = None) -> np.ndarray:
    """<int32>[T] the word of each piece of a ``tokenizers.Encoding``, -1 for special tokens
    and padding; a pair's second text continues the count.

    ``first_words``: the number of words of the first text (pre-tokenized input), so the second
    text's words start there and indices are positions in the given word lists (a word that lost
    all its pieces to truncation simply has none). ``None`` (raw text): the second text starts
    after the first's last word, and the indices are renumbered densely (no gaps).
    """
    special = np.asarray(encoding.special_tokens_mask, dtype=bool)
    words = np.array([-1 if w is None else w for w in encoding.word_ids], dtype=np.int64)
    sequence = np.array([-1 if s is None else s for s in encoding.sequence_ids], dtype=np.int64)
    words = np.where(special, -1, words)
    if first_words is None:
        first = words[(sequence == 0) & (words >= 0)]
        offset = int(first.max()) + 1 if first.size else 0
    else:
        offset = first_words
    words = np.where((sequence == 1) & (words >= 0), words + offset, words)
    if first_words is not None:
        return words.astype(np.int32)
    out = np.full(words.shape, -1, dtype=np.int32)
    real = words >= 0
    if real.any():
        _, dense = np.unique(words[real], return_inverse=True)
        out[real] = dense
    return out


class WordPieceTokenizer:
    """A :class:`TextTokenizer` over a ``tokenizers.Tokenizer`` (BERT's WordPiece, with its
    normalizer, [CLS]/[SEP] post-processor and vocabulary).

    Args:
      tokenizer: the tokenizer (e.g. :func:`jaxattn.models.pretrained.read_tokenizer`); it is
        copied, padding off and truncation at ``max_length`` (longest text first).
      max_length: the most pieces a row holds, [CLS] and [SEP] included (0: no limit).
    """

    joins_pairs = True

    def __init__(self, tokenizer: Tokenizer, max_length: int = 0):
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_padding()
        if max_length > 0:
            self.tokenizer.enable_truncation(max_length)
        else:
            self.tokenizer.no_truncation()
        self.max_length = max_length

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode_words(self, words: Sequence[str], query: Sequence[str] | None = None) -> Pieces:
        pair = None if query is None else list(query)
        enc = self.tokenizer.encode(list(words), pair, is_pretokenized=True)
        return Pieces(
            ids=np.asarray(enc.ids, np.int32),
            word_index=word_index_of(enc, len(words)),
            token_types=np.asarray(enc.type_ids, np.int32),
        )

    def piece_names(self, ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.id_to_token(int(i)) or f"[{int(i)}]" for i in ids]

    def save(self, path: str | Path) -> None:
        """Writes ``tokenizer.json`` (truncation included)."""
        self.tokenizer.save(str(path))

    @classmethod
    def load(cls, path: str | Path) -> WordPieceTokenizer:
        """Reads what :meth:`save` wrote; :class:`DataError` naming the file otherwise."""
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed files
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{path}: cannot read tokenizer ({detail})") from None
        truncation = tok.truncation or {}
        return cls(tok, int(truncation.get("max_length") or 0))


def sum_over_words(values, word_index, num_words: int):
    """Per-piece ``values`` <float>[B, T] summed into per-word <float>[B, num_words]; pieces
    with ``word_index`` -1 (boundary markers, padding) count nowhere. Works on numpy and jax
    arrays alike (jit-friendly for a static ``num_words``)."""
    xp = np if isinstance(values, np.ndarray) and isinstance(word_index, np.ndarray) else jnp
    onehot = word_index[:, :, None] == xp.arange(num_words)[None, None, :]
    return xp.einsum("bt,btw->bw", values, onehot.astype(values.dtype))


def attention_over_words(maps, word_index, num_words: int):
    """Piece-to-piece maps <float>[..., B, T, T] summed into word-to-word maps
    <float>[..., B, W, W] (the same rule on both axes: a word's row sums its pieces' rows, a
    word's column sums its pieces' columns)."""
    onehot = (word_index[:, :, None] == np.arange(num_words)[None, None, :]).astype(np.float32)
    return np.einsum("...bqk,bqw,bkv->...bwv", np.asarray(maps, np.float32), onehot, onehot)
