"""Turning examples into padded, masked arrays (:class:`~jaxattn.core.protocol.Batch`) and batch
iterators. The special token ids end here: batches carry masks, which is all models and analyses see.

Sequence lengths are padded up to a few bucket lengths and the batch axis up to a fixed size (extra
rows carry weight 0), so a jitted step compiles once per bucket and never per batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn.core.protocol import TOKEN_FIELDS, Batch
from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.tokenizers import TextTokenizer
from jaxattn.data.vocab import EOS, PAD, SOS, SPECIALS, real_token_mask

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512, 1024)


def with_tokens(batch: Batch, tokens, query=None) -> Batch:
    """``batch`` with new token ids (and query ids) of a word vocabulary, their masks and word
    index recomputed from the special ids."""
    mask = real_token_mask(tokens)
    out = batch.replace(tokens=tokens, mask=mask, valid=tokens != PAD,
                        word_index=jnp.where(mask, jnp.cumsum(mask, axis=-1) - 1, -1))
    if query is not None:
        out = out.replace(query=query, query_valid=query != PAD)
    return out


def bucket_length(n: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """The smallest bucket >= n; beyond the largest, the next multiple of it."""
    for b in buckets:
        if n <= b:
            return b
    top = buckets[-1]
    return -(-n // top) * top


@dataclasses.dataclass
class EncodedSplit:
    """A split as id arrays (ragged) ready to be padded into batches.

    Attributes:
      tokens: per example <int32>[N_i] piece ids with their boundary markers (SOS/EOS, or
        [CLS]/[SEP]).
      labels: <int32>[N].
      queries: per example <int32>[len_q + 2] ids of a query encoded as its own sequence
        (a word vocabulary's pair tasks), or None (a joined pair lives in ``tokens``).
      candidates: <bool>[N, C] for QA, else None.
      rationales: per example <bool>[N_i] aligned with ``tokens`` (a piece is in the rationale
        when its word is), or None.
      word_index: per example <int32>[N_i] the word of each piece (an index into the example's
        words, a joined query's words after them), -1 for boundary markers; the batch masks
        come from it. Default: each real token its own word (the word vocabulary's layout).
      token_types: per example <int32>[N_i] segment ids of a joined pair, or None (all 0).
    """

    tokens: list[np.ndarray]
    labels: np.ndarray
    queries: list[np.ndarray] | None = None
    candidates: np.ndarray | None = None
    rationales: list[np.ndarray] | None = None
    word_index: list[np.ndarray] | None = None
    token_types: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.word_index is None:
            self.word_index = [_vocab_word_index(np.asarray(t)) for t in self.tokens]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def lengths(self) -> np.ndarray:
        """<int64>[N] number of real tokens (pieces of words) per example."""
        return np.asarray([int((w >= 0).sum()) for w in self.word_index], dtype=np.int64)

    def width(self, indices) -> int:
        """The padded width that holds rows ``indices`` whole, boundary markers included."""
        return max(len(self.tokens[i]) for i in indices)

    def num_words(self, i: int) -> int:
        """How many words row ``i``'s pieces belong to (the highest word index + 1)."""
        return int(self.word_index[i].max(initial=-1)) + 1


def _vocab_word_index(tokens: np.ndarray) -> np.ndarray:
    """<int32>[N] word index of a word-vocabulary row: its real tokens counted from 0."""
    real = np.asarray(real_token_mask(tokens))
    return np.where(real, np.cumsum(real) - 1, -1).astype(np.int32)


def encode_split(
    examples: Sequence[Example], vocab: TextTokenizer, dataset: Dataset
) -> EncodedSplit:
    """Encodes each example with ``vocab`` (any :class:`~jaxattn.data.tokenizers.TextTokenizer`:
    the word :class:`Vocab` or WordPiece); a pair's query is joined to the text when the
    tokenizer ``joins_pairs``, else encoded as its own sequence. QA rows get a candidate mask of
    answers that occur in the passage; rationales go to every piece of a rationale word."""
    joined = dataset.is_pair and vocab.joins_pairs
    pieces = [
        vocab.encode_words(ex.tokens, (ex.query or ()) if joined else None) for ex in examples
    ]
    tokens = [p.ids for p in pieces]
    word_index = [p.word_index for p in pieces]
    token_types = [p.token_types for p in pieces] if joined else None
    labels = np.asarray([ex.label for ex in examples], dtype=np.int32)
    queries = None
    if dataset.is_pair and not joined:
        queries = [vocab.encode_words(ex.query or ()).ids for ex in examples]
    candidates = None
    if dataset.task == "qa":
        answers = dataset.label_names
        candidates = np.zeros((len(examples), len(answers)), dtype=bool)
        for i, ex in enumerate(examples):
            present = set(ex.tokens)
            candidates[i] = [a in present for a in answers]
            candidates[i, ex.label] = True
    rationales = None
    if examples and all(ex.rationale is not None for ex in examples):
        rationales = [
            _piece_rationale(np.asarray(ex.rationale, dtype=bool), w)
            for ex, w in zip(examples, word_index)
        ]
    return EncodedSplit(tokens, labels, queries, candidates, rationales, word_index, token_types)


def _piece_rationale(words: np.ndarray, word_index: np.ndarray) -> np.ndarray:
    """<bool>[N] a per-word rationale moved onto the pieces (markers and query words: False)."""
    inside = (word_index >= 0) & (word_index < len(words))
    out = np.zeros(len(word_index), dtype=bool)
    out[inside] = words[word_index[inside]]
    return out


def _pad(rows: Sequence[np.ndarray], batch_size: int, length: int, dtype) -> np.ndarray:
    out = np.zeros((batch_size, length), dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_batch(
    split: EncodedSplit,
    indices: Sequence[int],
    batch_size: int | None = None,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
) -> Batch:
    """Pads the examples at ``indices`` into a :class:`Batch` of ``batch_size`` rows."""
    indices = np.asarray(indices, dtype=np.int64)
    batch_size = batch_size or len(indices)
    if len(indices) > batch_size:
        raise ValueError(f"{len(indices)} examples do not fit a batch of {batch_size}")
    rows = [split.tokens[i] for i in indices]
    length = bucket_length(max(len(r) for r in rows), buckets)
    n = len(indices)
    index = np.full(batch_size, -1, dtype=np.int32)
    index[:n] = indices
    labels = np.zeros(batch_size, dtype=np.int32)
    labels[:n] = split.labels[indices]
    weights = np.zeros(batch_size, dtype=np.float32)
    weights[:n] = 1.0
    query = candidates = rationale = None
    if split.queries is not None:
        qrows = [split.queries[i] for i in indices]
        query = _pad(
            qrows, batch_size, bucket_length(max(len(r) for r in qrows), buckets), np.int32
        )
    if split.candidates is not None:
        candidates = np.zeros((batch_size, split.candidates.shape[1]), dtype=bool)
        candidates[:n] = split.candidates[indices]
        candidates[n:] = True  # padding rows: keep the softmax finite
    if split.rationales is not None:
        rationale = _pad([split.rationales[i] for i in indices], batch_size, length, bool)
    tokens = _pad(rows, batch_size, length, np.int32)
    word_index = _pad([split.word_index[i] + 1 for i in indices], batch_size, length, np.int32)
    valid = _pad([np.ones(len(r), bool) for r in rows], batch_size, length, bool)
    token_types = None
    if split.token_types is not None:
        token_types = _pad([split.token_types[i] for i in indices], batch_size, length, np.int32)
    return Batch(
        tokens=tokens,
        mask=word_index > 0,
        word_index=word_index - 1,
        valid=valid,
        token_types=token_types,
        labels=labels,
        weights=weights,
        index=index,
        query=query,
        query_valid=None if query is None else query != PAD,
        candidates=candidates,
        rationale=rationale,
    )


def training_batches(
    split: EncodedSplit,
    batch_size: int,
    rng: np.random.Generator,
    sort_noise: float = 0.1,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
) -> Iterator[Batch]:
    """J&W's order: sort by length with multiplicative noise, cut into batches, shuffle batches."""
    lengths = split.lengths.astype(np.float64)
    noisy = lengths * (1.0 + sort_noise * rng.uniform(-1.0, 1.0, size=len(lengths)))
    order = np.argsort(noisy, kind="stable")
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for k in rng.permutation(len(chunks)):
        yield make_batch(split, chunks[k], batch_size, buckets)


def eval_batches(
    split: EncodedSplit,
    batch_size: int,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    indices: Sequence[int] | None = None,
) -> Iterator[Batch]:
    """Length-sorted batches (little padding) covering ``indices`` (default: the whole split)."""
    indices = np.arange(len(split)) if indices is None else np.asarray(indices)
    order = indices[np.argsort(split.lengths[indices], kind="stable")]
    for i in range(0, len(order), batch_size):
        yield make_batch(split, order[i : i + batch_size], batch_size, buckets)


# What each token field of a Batch holds at a padding position.
TOKEN_PADDING = {"tokens": PAD, "mask": False, "valid": False, "rationale": False,
                 "token_types": 0, "word_index": -1}


def pad_batch(batch: Batch, length: int, query_length: int | None = None) -> Batch:
    """``batch`` with its token axis (and the query's) padded up to ``length`` (``query_length``)."""

    def pad(x, to, value=0):
        if x is None or to is None or x.shape[1] == to:
            return x
        return np.pad(np.asarray(x), ((0, 0), (0, to - x.shape[1])), constant_values=value)

    return batch.replace(
        **{name: pad(getattr(batch, name), length, TOKEN_PADDING[name]) for name in TOKEN_FIELDS},
        query=pad(batch.query, query_length),
        query_valid=pad(batch.query_valid, query_length),
    )


def stack_batches(batches: Sequence[Batch]) -> Batch:
    """Batches of equal size stacked to ``[M, B, ...]``, token axes padded to the longest."""
    length = max(b.tokens.shape[1] for b in batches)
    qlen = max(b.query.shape[1] for b in batches) if batches[0].query is not None else None
    padded = [pad_batch(b, length, qlen) for b in batches]
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *padded)


def placeholder_batch(task: str, num_classes: int) -> Batch:
    """A one-row batch of the right structure for ``task``, to initialise parameters without data."""
    pair = task in ("nli", "qa")
    row = [np.asarray([SOS, len(SPECIALS), EOS], np.int32)]
    split = EncodedSplit(
        tokens=row,
        labels=np.zeros(1, np.int32),
        queries=row if pair else None,
        candidates=np.ones((1, num_classes), bool) if task == "qa" else None,
    )
    return make_batch(split, [0])


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def kept_first(keep: jnp.ndarray) -> jnp.ndarray:
    """<int32>[B, T] positions with the ``keep`` ones first, each group in its original order."""
    return jnp.argsort(~keep, axis=-1, stable=True)


def keep_tokens(batch: Batch, keep: jnp.ndarray, width: int | None = None) -> Batch:
    """``batch`` with only the positions ``keep`` <bool>[B, T] left, moved to the front in their
    original order (the rest becomes padding): the shorter text, padded to the same ``T``, or
    to ``width`` positions (at least every row's kept count, else kept tokens are lost)."""
    order = kept_first(keep)[:, :width]
    kept = jnp.take_along_axis(keep, order, axis=-1)

    def gather(name: str) -> jnp.ndarray:
        return jnp.take_along_axis(getattr(batch, name), order, axis=-1) & kept

    out = {name: gather(name) for name in ("mask", "valid", "rationale")
           if getattr(batch, name) is not None}
    for name in ("tokens", "token_types", "word_index"):
        if getattr(batch, name) is not None:
            values = jnp.take_along_axis(getattr(batch, name), order, axis=-1)
            out[name] = jnp.where(kept, values, TOKEN_PADDING[name])
    return batch.replace(**out)
