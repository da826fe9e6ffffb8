"""Small shared builders for tests: tiny batches and models."""

from __future__ import annotations

import os
import traceback
import warnings
from pathlib import Path

import jax
import numpy as np

from jaxattn.cli import commands
from jaxattn.data.batching import Batch, EncodedSplit, encode_split, make_batch
from jaxattn.data.generators import make_synthetic
from jaxattn.data.vocab import PAD, Vocab, real_token_mask
from jaxattn.models.model import Model, build_model
from jaxattn.models.pretrained import Bert, BertConfig, read_tokenizer, write_folder
from jaxattn.runtime.launch import without_device_count


def fresh_process_xla_flags() -> str:
    """``XLA_FLAGS`` for a command started as its own process: the suite's (tests/conftest.py)
    without the CPU device count, so the command picks its own count but compiles as the tests
    do (results compared bit for bit with the tests' own stay comparable)."""
    return without_device_count(os.environ.get("XLA_FLAGS", ""))


def toy_batch(
    lengths=(5, 3, 7), vocab_size=30, pair=False, num_answers=0, seed=0, pad_rows=1
) -> Batch:
    """SOS + random real ids + EOS rows of the given real lengths, plus all-PAD rows."""
    rng = np.random.default_rng(seed)
    width = max(lengths) + 2 + 1
    rows = []
    for n in lengths:
        ids = [2, *rng.integers(4, vocab_size, size=n), 3]
        rows.append(ids + [0] * (width - len(ids)))
    rows += [[0] * width] * pad_rows
    tokens = np.asarray(rows, np.int32)
    b = len(rows)
    return Batch(
        tokens=tokens,
        mask=real_token_mask(tokens),
        valid=tokens != PAD,
        labels=np.asarray(rng.integers(0, max(num_answers, 2), size=b), np.int32),
        weights=np.asarray([1.0] * len(lengths) + [0.0] * pad_rows, np.float32),
        index=np.asarray(list(range(len(lengths))) + [-1] * pad_rows, np.int32),
        query=tokens[:, :4].copy() if pair else None,
        query_valid=tokens[:, :4] != PAD if pair else None,
        candidates=np.ones((b, num_answers), bool) if num_answers else None,
    )


def synthetic_test_batch(n: int, seed: int) -> tuple[Vocab, EncodedSplit, Batch]:
    """(vocab, encoded test split, a batch of its ``n`` rows plus one padding row) of a small
    generated planted-rationale data set."""
    ds = make_synthetic(n_train=40, n_dev=2, n_test=n, seed=seed)
    vocab = Vocab.build([ex.tokens for ex in ds.splits["train"]])
    split = encode_split(ds.splits["test"], vocab, ds)
    return vocab, split, make_batch(split, range(n), batch_size=n + 1)


def toy_model(
    task="binary",
    encoder="bilstm",
    attention="additive",
    vocab_size=30,
    num_classes=2,
    seed=0,
    batch=None,
) -> tuple[Model, dict, Batch]:
    """A tiny randomly initialised model with a matching batch."""
    pair = task in ("nli", "qa")
    batch = (
        batch
        if batch is not None
        else toy_batch(
            vocab_size=vocab_size, pair=pair, num_answers=num_classes if task == "qa" else 0
        )
    )
    model = build_model(
        vocab_size=vocab_size,
        task=task,
        num_classes=num_classes,
        encoder=encoder,
        attention=attention,
        embed_dim=12,
        hidden_size=8,
        cnn_filters=4,
        layers=2,
        heads=2,
        width=8,
        ff_size=16,
    )
    return model, model.init(jax.random.key(seed), batch), batch


def chromium_dom(page, timeout: float = 120.0) -> str:
    """The DOM of the HTML file ``page`` as headless Chromium renders it (skips the calling test
    when no Chromium is installed)."""
    import shutil
    import subprocess

    import pytest

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium installed")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"file://{page.resolve()}"],
        capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def first_table_class(dom: str) -> str | None:
    """The ``class`` of the first ``<table>`` of a rendered DOM (None if it has none)."""
    import re

    match = re.search(r"<table(?:\s+class=\"([^\"]*)\")?", dom)
    return None if match is None else (match.group(1) or "")


# The synthetic task's words; those longer than five letters are split into several WordPiece
# pieces by the tiny vocabulary below (``charming`` -> ``cha ##rm ##ing``).
def tiny_bert_folder(folder, words, *, hidden=32, layers=2, heads=2, seed=0):
    """A random BERT (hidden ``hidden``, ``layers`` layers) written as a Hugging Face folder
    with :func:`~jaxattn.models.pretrained.write_folder`, its WordPiece vocabulary holding every
    word of ``words`` up to five letters whole and longer ones as pieces of at most three
    letters; no torch needed. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for word in sorted(set(words)):
        if len(word) <= 5:
            pieces = [word]
        else:
            pieces = [word[:3]] + ["##" + word[i : i + 3] for i in range(3, len(word), 3)]
        vocab += [p for p in pieces if p not in vocab]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_layers=layers,
                        num_heads=heads, intermediate_size=2 * hidden,
                        max_position_embeddings=256)
    params = Bert(config).init(jax.random.key(seed), pooler=True)
    tokenizer = read_tokenizer(folder)
    (folder / "vocab.txt").unlink()
    return write_folder(folder, config, params, tokenizer)


def perturbed(params, seed=1, scale=0.3):
    """``params`` plus Gaussian noise, so that LayerNorms, biases, positions and attention maps
    are far from their initial, near-uniform values."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )


def cli_here(argv, capfd=None) -> tuple[int, str]:
    """(exit status, stderr) of ``jaxattn.cli.main(argv)`` run in this process, as
    ``python -m jaxattn.cli`` would end: an exception out of ``main`` is its traceback on stderr,
    a warning its line (the categories a fresh interpreter shows), and argparse's ``SystemExit``
    its status. stderr is what ``capfd`` captured during the call (nothing without it)."""
    if capfd is not None:
        capfd.readouterr()  # drop what came before
    extra = ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                       ResourceWarning):
            warnings.filterwarnings("ignore", category=hidden)
        try:
            status = commands.main(list(argv))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
            status = code if isinstance(code, int) else 0 if code is None else 1
        except BaseException:  # noqa: B036 - any escape is the traceback a user would see
            extra, status = traceback.format_exc(), 1
    for w in caught:  # printed on stderr by a fresh interpreter
        extra += warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
    return status, (capfd.readouterr().err if capfd is not None else "") + extra
