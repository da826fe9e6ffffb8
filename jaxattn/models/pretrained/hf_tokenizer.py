"""The tokenizer of a Hugging Face BERT folder, and tokenizing with it.

:func:`read_tokenizer` gives a ``tokenizers.Tokenizer`` (``tokenizer.json``, or WordPiece over
``vocab.txt`` with ``tokenizer_config.json``) with its padding and truncation switched off
(jaxattn pads batches itself), and :func:`tokenize` a padded batch with ``word_index``, the word
each piece belongs to (``-1`` for [CLS], [SEP] and padding, which are not real tokens), so
per-piece scores sum to per-word scores with :func:`sum_over_words`. Every problem is one line
naming the file and the key (:class:`~jaxattn.core.errors.PretrainedError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from jaxattn.core.errors import PretrainedError, read_json_object, read_text, text_lines
from jaxattn.data.tokenizers import sum_over_words, word_index_of  # noqa: F401 (re-exported)

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"



def _tokenizer_settings(folder: Path) -> dict:
    path = folder / TOKENIZER_CONFIG_FILE
    if not path.is_file():
        return {}
    return read_json_object(path, error=PretrainedError, what="tokenizer config")


def _special(settings: dict, key: str, default: str) -> str:
    value = settings.get(key, default)
    if isinstance(value, dict):  # an AddedToken saved as {"content": ...}
        value = value.get("content", default)
    return str(value)


def read_tokenizer(folder: str | Path):
    """The ``tokenizers.Tokenizer`` of ``folder``, padding and truncation off.

    ``tokenizer.json`` when there is one; else WordPiece over ``vocab.txt`` built as
    ``transformers`` converts a ``BertTokenizer`` (BERT normalizer and pre-tokenizer,
    ``[CLS] ... [SEP]`` around each text), lowercasing and accent stripping as
    ``tokenizer_config.json`` says (``do_lower_case`` true unless it says otherwise).
    """

    folder = Path(folder)
    path = folder / TOKENIZER_FILE
    if path.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed files
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise PretrainedError(f"{path}: cannot read tokenizer ({detail})") from None
    else:
        vocab_path = folder / VOCAB_FILE
        if not vocab_path.is_file():
            raise PretrainedError(f"{folder}: no {TOKENIZER_FILE} and no {VOCAB_FILE}")
        settings = _tokenizer_settings(folder)
        text = read_text(vocab_path, error=PretrainedError, what="vocabulary")
        # A token's id is its line number, a repeated token keeping its last line, as
        # transformers' load_vocab reads the file.
        vocab = {line.rstrip("\n"): i for i, line in enumerate(text_lines(text))}
        vocab.pop("", None)
        unk = _special(settings, "unk_token", "[UNK]")
        cls, sep = (
            _special(settings, "cls_token", "[CLS]"),
            _special(settings, "sep_token", "[SEP]"),
        )
        for key, token in (("unk_token", unk), ("cls_token", cls), ("sep_token", sep)):
            if token not in vocab:
                raise PretrainedError(f"{vocab_path}: {key} {token!r} is not in the vocabulary")
        tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
            strip_accents=settings.get("strip_accents"),
            lowercase=bool(settings.get("do_lower_case", True)),
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.post_processor = processors.BertProcessing((sep, vocab[sep]), (cls, vocab[cls]))
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        specials = [_special(settings, k, d) for k, d in _SPECIAL_DEFAULTS]
        tokenizer.add_special_tokens([t for t in specials if t in vocab])
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


_SPECIAL_DEFAULTS = (
    ("unk_token", "[UNK]"),
    ("sep_token", "[SEP]"),
    ("pad_token", "[PAD]"),
    ("cls_token", "[CLS]"),
    ("mask_token", "[MASK]"),
)


@dataclasses.dataclass(frozen=True)
class Tokenized:
    """A padded batch of tokenized texts (numpy arrays).

    Attributes:
      ids: <int32>[B, T] word-piece ids, ``pad_id`` after the end.
      token_type_ids: <int32>[B, T] 0 for the first text, 1 for the second of a pair.
      valid: <bool>[B, T] positions holding input ([CLS], pieces, [SEP]).
      mask: <bool>[B, T] real tokens: the word pieces, not [CLS] / [SEP] / padding.
      word_index: <int32>[B, T] the word each piece belongs to, counted from 0 over the row
        (the second text's words follow the first's); -1 where ``mask`` is False.
      num_words: <int32>[B] words per row.
    """

    ids: np.ndarray
    token_type_ids: np.ndarray
    valid: np.ndarray
    mask: np.ndarray
    word_index: np.ndarray
    num_words: np.ndarray


def word_index(encoding) -> np.ndarray:
    """<int32>[T] the word of each piece of a ``tokenizers.Encoding`` (counted over the whole
    encoding, a pair's second text after the first), -1 for special tokens and padding.

    Words are what the tokenizer's pre-tokenizer splits (for BERT: at whitespace and at each
    punctuation character, so ``don't`` is three words ``don`` ``'`` ``t``); a word that lost
    all its pieces to truncation leaves no gap (:func:`jaxattn.data.tokenizers.word_index_of`).
    """
    return word_index_of(encoding)


def tokenize(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int | None = None,
    pad_id: int | None = None,
) -> Tokenized:
    """Tokenizes ``texts`` (with ``pairs`` as second texts) into one padded batch.

    ``max_length`` truncates each row (longest text first, as HF does); ``pad_id`` defaults to
    the tokenizer's ``[PAD]`` id, else 0.
    """
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
    if max_length is not None:

        tokenizer = Tokenizer.from_str(tokenizer.to_str())
        tokenizer.enable_truncation(max_length)
    inputs = list(texts) if pairs is None else list(zip(texts, pairs))
    encodings = tokenizer.encode_batch(inputs)
    if pad_id is None:
        pad_id = tokenizer.token_to_id("[PAD]")
        pad_id = 0 if pad_id is None else pad_id
    B, T = len(encodings), max((len(e.ids) for e in encodings), default=0)
    ids = np.full((B, T), pad_id, dtype=np.int32)
    types = np.zeros((B, T), dtype=np.int32)
    valid = np.zeros((B, T), dtype=bool)
    words = np.full((B, T), -1, dtype=np.int32)
    for b, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[b, :n] = enc.ids
        types[b, :n] = enc.type_ids
        valid[b, :n] = True
        words[b, :n] = word_index(enc)
    return Tokenized(
        ids=ids,
        token_type_ids=types,
        valid=valid,
        mask=words >= 0,
        word_index=words,
        num_words=(words.max(axis=1, initial=-1) + 1).astype(np.int32),
    )
