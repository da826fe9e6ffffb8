"""Stacked (vmapped) training of several seeds, its resume, and the per-instance comparison."""

import json

import jax
import numpy as np
import pytest
import scipy.spatial.distance

import jaxattn.runs.seeds as seeds_module
from jaxattn.config import load_config
from jaxattn.data.batching import make_batch, stack_batches
from jaxattn.data.generators import make_synthetic
from jaxattn.data.prepare import prepare
from jaxattn.runs.run import load_run, model_for
from jaxattn.runs.seeds import train_seeds
from jaxattn.studies.comparison import compare_members
from jaxattn.training.train_state import stack_trees
from tests.helpers import toy_batch

TINY = ["data.name=synthetic", "model.encoder=average", "model.embed_dim=16", "model.hidden_size=8",
        "train.epochs=2", "train.batch_size=16", "train.buckets=[16, 40]"]


@pytest.fixture(scope="module")
def data():
    cfg = load_config(None, TINY)
    return cfg, prepare(cfg.data, dataset=make_synthetic(n_train=96, n_dev=32, n_test=40, seed=2))


def test_stack_batches_pads_to_the_longest_and_stacks():
    a = toy_batch(lengths=(3, 2), pad_rows=0, seed=0)
    b = toy_batch(lengths=(7, 1), pad_rows=0, seed=1)
    stacked = stack_batches([a, b])
    assert stacked.tokens.shape == (2, 2, b.tokens.shape[1])
    np.testing.assert_array_equal(stacked.tokens[0, :, : a.tokens.shape[1]], a.tokens)
    assert np.all(stacked.tokens[0, :, a.tokens.shape[1]:] == 0)
    np.testing.assert_array_equal(stacked.tokens[1], b.tokens)
    np.testing.assert_array_equal(stacked.labels, np.stack([a.labels, b.labels]))


def test_stacked_seeds_equal_one_by_one_training_and_resume(tmp_path, data, monkeypatch):
    cfg, prepared = data
    # Interrupt the stack at its first checkpoint (epoch 1 trained, not yet evaluated), then
    # resume it.
    real_save = seeds_module.save_checkpoint
    calls = []

    def save_then_stop(path, state, meta):
        real_save(path, state, meta)
        calls.append((state.epoch, state.trained is not None))
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(seeds_module, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_seeds(cfg, [5, 6], prepared, tmp_path / "stack", mode="vmap", progress=False)
    assert (tmp_path / "stack" / "seeds_checkpoint.msgpack").exists()
    dirs = train_seeds(cfg, [5, 6], prepared, tmp_path / "stack", mode="vmap", progress=False)
    # The resumed stack evaluated epoch 1 without training it again, then trained epoch 2.
    assert calls == [(0, True), (1, False), (1, True), (2, False)]
    assert not (tmp_path / "stack" / "seeds_checkpoint.msgpack").exists()

    alone = train_seeds(cfg, [6], prepared, tmp_path / "alone", mode="sequential", progress=False)
    stacked_run, alone_run = load_run(dirs[1]), load_run(alone[0])
    assert stacked_run.config.train.seed == alone_run.config.train.seed == 6
    for x, y in zip(jax.tree_util.tree_leaves(stacked_run.params),
                    jax.tree_util.tree_leaves(alone_run.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    m_stacked = json.loads((dirs[1] / "metrics.json").read_text())
    m_alone = json.loads((alone[0] / "metrics.json").read_text())
    assert m_stacked["best_epoch"] == m_alone["best_epoch"]
    assert m_stacked["test"]["accuracy"] == pytest.approx(m_alone["test"]["accuracy"])
    # Different seeds give different models.
    other = load_run(dirs[0]).params
    assert not np.allclose(np.asarray(other["decoder_out"]["kernel"]),
                           np.asarray(stacked_run.params["decoder_out"]["kernel"]))
    # Finished seeds are not retrained.
    monkeypatch.setattr(seeds_module, "train", lambda *a, **k: pytest.fail("retrained"))
    assert train_seeds(cfg, [5, 6], prepared, tmp_path / "stack", progress=False) == dirs


def test_compare_members_matches_a_direct_computation(data):
    cfg, prepared = data
    model = model_for(cfg, prepared, len(prepared.vocab))
    split = prepared.splits["test"]
    batch = make_batch(split, range(len(split)), buckets=cfg.train.buckets)
    base = model.init(jax.random.key(0), batch)
    others = [model.init(jax.random.key(k), batch) for k in (1, 2)]
    comp = compare_members(model, base, stack_trees([base, *others]), split, batch_size=16,
                           buckets=cfg.train.buckets)
    assert comp.jsd.shape == comp.tvd.shape == (3, len(split))
    np.testing.assert_allclose(comp.jsd[0], 0.0, atol=1e-6)  # the base against itself
    np.testing.assert_allclose(comp.tvd[0], 0.0, atol=1e-6)
    # Member 2 against the base, instance by instance, on the whole split as one batch.
    logits_b, attn_b = model.forward(base, batch)
    logits_o, attn_o = model.forward(others[1], batch)
    pb, po = np.asarray(model.probs(logits_b)), np.asarray(model.probs(logits_o))
    attn_b, attn_o = np.asarray(attn_b, np.float64), np.asarray(attn_o, np.float64)
    ref_jsd = [scipy.spatial.distance.jensenshannon(a, b) ** 2 for a, b in zip(attn_o, attn_b)]
    np.testing.assert_allclose(comp.jsd[2], ref_jsd, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(comp.tvd[2], 0.5 * np.abs(po - pb).sum(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(comp.max_attn, attn_b.max(1), rtol=1e-6)
    np.testing.assert_allclose(comp.base_probs, pb, rtol=1e-5, atol=1e-6)


def test_a_stack_too_large_for_the_memory_is_refused_before_any_seed(data, tmp_path, monkeypatch):
    """Seeds beyond the memory (a stack) or the folder limit: one line naming --seeds, nothing
    built or written."""
    from jaxattn.core.errors import ConfigError

    cfg, prepared = data
    monkeypatch.setattr(seeds_module, "initial_params",
                        lambda *a, **k: pytest.fail("a seed was built"))
    monkeypatch.setattr(seeds_module, "available_memory", lambda: (2**20, "a 1 MiB machine"))
    with pytest.raises(ConfigError, match=r"^--seeds: a stack of 5000 models needs about .* "
                                          r"more than the 0.000977 GiB of a 1 MiB machine"):
        seeds_module.train_seeds(cfg, range(5000), prepared, tmp_path / "s", mode="vmap",
                                 progress=False)
    with pytest.raises(ConfigError, match=r"^--seeds 100000000: at most 100000 seed runs"):
        seeds_module.train_seeds(cfg, range(10**8), prepared, tmp_path / "s", mode="sequential",
                                 progress=False)
    assert not (tmp_path / "s").exists()


def test_seeds_of_a_pretrained_run_start_from_its_encoder_with_a_new_head(tmp_path):
    """Both seed modes retrain a BERT run from the folder's weights (not from random ones),
    each seed with its own head, and agree with each other."""
    from jaxattn.models.pretrained import load_folder
    from jaxattn.runs.pretrained import load_source
    from tests.helpers import tiny_bert_folder

    dataset = make_synthetic(n_train=48, n_dev=16, n_test=16, seed=2)
    words = {w for split in dataset.splits.values() for ex in split for w in ex.tokens}
    folder = tiny_bert_folder(tmp_path / "hf", words, hidden=16, layers=1)
    cfg = load_config(None, ["data.name=synthetic", "model.encoder=bert", "model.head=cls",
                             f"model.pretrained='{folder}'", "train.optimizer=adamw",
                             "train.epochs=1", "train.batch_size=16", "train.buckets=[64]"])
    prepared = prepare(cfg.data, vocab=load_source(cfg).tokenizer, dataset=dataset)
    stacked = train_seeds(cfg, [3, 4], prepared, tmp_path / "stack", mode="vmap", progress=False)
    alone = train_seeds(cfg, [4], prepared, tmp_path / "alone", mode="sequential",
                        progress=False)
    encoder = load_folder(folder).params
    runs = [load_run(d) for d in (*stacked, *alone)]
    for run in runs:
        moved = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                                       run.params["bert"]["layers"], encoder["layers"])
        assert max(jax.tree_util.tree_leaves(moved)) < 0.01  # 3 small steps from the folder's
    # Seed 4's head starts from the same draw in both modes, and with one padded length (the
    # texts have 14 to 47 pieces; one program per step to compile) the stack and the single
    # run also draw the same dropout masks; seed 3's is another draw.
    heads = [np.asarray(r.params["head"]["classifier"]["kernel"]) for r in runs]
    assert heads[0].shape == (16, 2)
    np.testing.assert_allclose(heads[1], heads[2], atol=1e-4)
    assert np.abs(heads[0] - heads[1]).max() > 0.02
