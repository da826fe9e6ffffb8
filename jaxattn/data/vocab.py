"""Text cleaning and the vocabulary (ids PAD=0, UNK=1, SOS=2, EOS=3; train split only, min-df)."""

from __future__ import annotations

import collections
import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import regex

from jaxattn.core.errors import read_text
from jaxattn.data.dataset import DataError
from jaxattn.data.tokenizers import Pieces

PAD, UNK, SOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<sos>", "<eos>")
DIGIT_TOKEN = "qqq"

_DIGITS = re.compile(r"\d+")  # any Unicode decimal digit (Nd): 1999, ١٩, १९
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Invisible characters that carry no letters: zero-width space / (non-)joiners, direction marks,
# bidirectional embeddings and isolates, the word joiner and a stray byte-order mark. They are
# read as spaces, so "caf\u200be" is two words and a text of nothing else is empty. The ASCII
# separators U+001C-U+001F are whitespace to str.split() and the stdlib \s but not to `regex`'s
# \s; mapping them to a space keeps both tokenisers on one notion of whitespace.
_SPACING = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\u2060\ufeff\x1c-\x1f]")
# ASCII text: words (with inner apostrophes/hyphens) or single punctuation marks, J&W's spaCy
# tokens, closely.
_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*|[^\sa-z0-9]")
# Any text: the same shape over grapheme clusters (\X: a character with its combining marks,
# emoji modifiers and variation selectors, or a flag's two regional indicators). A word cluster
# starts with a letter or number; Han ideographs and hiragana are words of one character each
# (as in Unicode's word boundaries, UAX #29), since such text has no spaces between words.
_WORD_CLUSTER = r"(?:(?=[\p{L}\p{N}])(?![\p{Han}\p{Hiragana}])\X)"
_UNICODE_TOKEN = regex.compile(
    rf"{_WORD_CLUSTER}+(?:['\-]{_WORD_CLUSTER}+)*|(?=\S)\X", regex.VERSION0
)


def normalize_text(text: str) -> str:
    """``text`` as the tokeniser reads it: ``<br />`` and the invisible characters above become
    spaces, then lower-cased and put in Unicode NFC form (so "caf\u00e9" and "cafe\u0301" match).
    ASCII text is only lower-cased (and ``<br />`` replaced)."""
    text = _HTML_BREAK.sub(" ", text)
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", _SPACING.sub(" ", text).lower())


def is_blank(text: str) -> bool:
    """Whether ``text`` holds nothing but whitespace and the invisible characters above."""
    return not _SPACING.sub(" ", text).strip()


@functools.lru_cache(maxsize=1 << 18)  # a corpus repeats few word types many times
def word_form(token: str) -> str:
    """The word vocabulary's form of ``token``: every digit run becomes ``qqq`` (J&W's
    convention, so that "1999" and "2003" share one embedding). Only :class:`Vocab` applies it;
    a pretrained tokenizer reads the digits as written (its vocabulary has pieces for them)."""
    return _DIGITS.sub(DIGIT_TOKEN, token)


def clean_tokens(text: str, *, pretokenized: bool = False) -> list[str]:
    """Lower-cases and splits into tokens (docs/tokenization.md); digits are kept (the word
    vocabulary maps them with :func:`word_form`).

    ``pretokenized`` text (SST-2, e-SNLI, ERASER) is split on whitespace only, so the corpus's own
    tokenisation (and any rationale offsets into it) is kept; raw text is split into words and
    punctuation marks. Non-ASCII text is first put in NFC form, with zero-width and bidirectional
    control characters read as spaces (:func:`normalize_text`).
    """
    text = normalize_text(text)
    if pretokenized:
        return text.split()
    # The ASCII pattern is the Unicode one restricted to ASCII (a test checks this), and 3x faster.
    return _TOKEN.findall(text) if text.isascii() else _UNICODE_TOKEN.findall(text)


def real_token_mask(tokens):
    """<bool>[..., T] True where ``tokens`` (an int array) holds a real token, not PAD/SOS/EOS."""
    return (tokens != PAD) & (tokens != SOS) & (tokens != EOS)


class Vocab:
    """Token <-> id mapping: the four special ids first, then the words.

    The special ids are never looked up from text. A text token spelled like a special (``<pad>``,
    ``<unk>``, ``<sos>``, ``<eos>``) is an ordinary word: it has its own id when it is in the
    vocabulary and is UNK otherwise, so text can never produce padding or a boundary. ``itos``
    names every id; a word ``<pad>`` therefore prints like id 0 but is a different id.

    Attributes:
      itos: the name of every id (the specials, then the words; saved as ``vocab.json``).
      stoi: word -> id, for the words only.
    """

    def __init__(self, words: Sequence[str]):
        self.itos: list[str] = list(SPECIALS) + list(dict.fromkeys(words))
        self.stoi: dict[str, int] = {
            w: i for i, w in enumerate(self.itos) if i >= len(SPECIALS)
        }

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], min_df: int = 1) -> Vocab:
        """Keeps words whose document frequency is at least ``min_df`` (most frequent first)."""
        df: collections.Counter[str] = collections.Counter()
        for tokens in texts:
            df.update({word_form(t) for t in tokens})
        words = sorted((w for w, n in df.items() if n >= min_df), key=lambda w: (-df[w], w))
        return cls(words)

    def encode(self, tokens: Sequence[str], *, add_boundaries: bool = True) -> np.ndarray:
        """Returns int32 ids, ``[SOS] tokens [EOS]`` unless ``add_boundaries`` is False; every
        token gets the id of its :func:`word_form` or UNK, never PAD, SOS or EOS."""
        ids = [self.stoi.get(word_form(t), UNK) for t in tokens]
        if add_boundaries:
            ids = [SOS, *ids, EOS]
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    # The tokenizer interface (jaxattn.data.tokenizers.TextTokenizer): each word one piece.
    joins_pairs = False

    def encode_words(self, words: Sequence[str], query: Sequence[str] | None = None):
        """``Pieces`` of ``SOS words EOS``: word ``i`` is piece ``i + 1``; a query is encoded on
        its own (``joins_pairs`` is False), so ``query`` must be None."""
        if query is not None:
            raise ValueError("a word vocabulary encodes a pair's query as its own sequence")
        ids = self.encode(words)
        word_index = np.arange(-1, len(ids) - 1, dtype=np.int32)
        word_index[-1] = -1
        return Pieces(ids, word_index, np.zeros(len(ids), np.int32))

    def piece_names(self, ids: Iterable[int]) -> list[str]:
        return self.decode(int(i) for i in ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.itos, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Reads a vocabulary written by :meth:`save`; :class:`DataError` naming the file if it is
        unreadable or not one."""
        text = read_text(path, error=DataError, what="vocabulary file")
        try:
            itos = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        if (
            not isinstance(itos, list)
            or not all(isinstance(w, str) for w in itos)
            or itos[: len(SPECIALS)] != list(SPECIALS)
        ):
            raise DataError(
                f"{path}: not a jaxattn vocabulary (a JSON list of words, the specials first)"
            )
        return cls(itos[len(SPECIALS) :])
