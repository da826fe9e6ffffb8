"""Optimizers: which parameters decay, the config-driven AMSGrad / AdamW, and any optax
transformation through ``jaxattn.train`` with checkpoint and resume."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxattn.config import ConfigError, TrainConfig, load_config
from jaxattn.training.optimizers import decay_mask, learning_rate_schedule, make_optimizer
from tests.helpers import toy_model

ENCODERS = ["bilstm", "cnn", "average", "transformer", "ortho_lstm", "diversity_lstm"]
# The pooling scorer's parameters (AdditiveAttention; W1q reads the query of pair tasks).
SCORER = {"attention/W1/bias", "attention/W1/kernel", "attention/w2/kernel"}
# A 2-layer Transformer encoder's self-attention projections.
SELF_ATTENTION = {f"text_encoder/blocks_{i}/attention/{dense}/{p}"
                  for i in (0, 1) for dense in ("query", "key", "value", "out")
                  for p in ("kernel", "bias")}


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def _old_mask(params):
    """The mask before the fix: no decay under any key named ``attention``."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not any(getattr(k, "key", None) == "attention" for k in path), params)


def _decayed_by_optimizer(optimizer, params) -> tuple[set[str], set[str]]:
    """(decayed, exempt) parameter paths, read off one update with zero gradients: only
    weight decay can move a parameter then (every parameter set to 1 so none is 0)."""
    ones = jax.tree_util.tree_map(jnp.ones_like, params)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(ones), ones)
    decayed, exempt = set(), set()
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
        (decayed if bool(jnp.any(u != 0)) else exempt).add(_name(path))
    return decayed, exempt


@pytest.mark.parametrize("encoder", ENCODERS)
def test_weight_decay_spares_only_the_pooling_scorer(encoder):
    _, params, _ = toy_model("binary", encoder)
    names = {_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
    for cfg in (TrainConfig(), TrainConfig(optimizer="adamw", warmup_fraction=0.0)):
        decayed, exempt = _decayed_by_optimizer(make_optimizer(cfg, 64), params)
        assert exempt == SCORER, (cfg.optimizer, sorted(exempt))
        assert decayed == names - SCORER
    mask = {_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(decay_mask(params))}
    old = {_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(_old_mask(params))}
    changed = {k for k in mask if mask[k] != old[k]}
    if encoder == "transformer":
        # The encoder's self-attention now decays like its feed-forward layers; nothing else moved.
        assert SELF_ATTENTION <= decayed and changed == SELF_ATTENTION
        assert "text_encoder/blocks_0/ff_in/kernel" in decayed
    else:
        assert changed == set()  # the same mask as before the fix


def test_pair_tasks_spare_the_query_projection_and_decay_the_query_encoder():
    _, params, _ = toy_model("nli", "transformer")
    decayed, exempt = _decayed_by_optimizer(make_optimizer(TrainConfig()), params)
    assert exempt == SCORER | {"attention/W1q/kernel"}
    assert {n.replace("text_encoder", "query_encoder") for n in SELF_ATTENTION} <= decayed


def _old_default(cfg: TrainConfig) -> optax.GradientTransformation:
    """The optimizer every run used before ``train.optimizer`` existed (with the old mask)."""
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=_old_mask),
                       optax.amsgrad(cfg.learning_rate))


def _run(optimizer, params, grads):
    state = optimizer.init(params)
    for g in grads:
        updates, state = optimizer.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


def _random_grads(params, steps, seed=0):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    return [treedef.unflatten([jnp.asarray(rng.normal(size=x.shape), x.dtype) for x in leaves])
            for _ in range(steps)]


@pytest.mark.parametrize("encoder", ["bilstm", "average"])
def test_the_default_is_todays_optimizer(encoder):
    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.warmup_fraction) == ("amsgrad", 0.1)
    _, params, _ = toy_model("binary", encoder)
    grads = _random_grads(params, 3)
    new, old = _run(make_optimizer(cfg), params, grads), _run(_old_default(cfg), params, grads)
    jax.tree_util.tree_map(np.testing.assert_array_equal, new, old)


def test_learning_rate_schedule_warms_up_then_decays_linearly():
    cfg = TrainConfig(optimizer="adamw", learning_rate=0.5, epochs=2, warmup_fraction=0.2)
    schedule = learning_rate_schedule(cfg, 10)  # 20 steps, 4 of warm-up
    want = [0.5 * t / 4 if t < 4 else 0.5 * (20 - t) / 16 for t in range(21)]
    np.testing.assert_allclose([float(schedule(t)) for t in range(21)], want, atol=1e-7)
    flat = learning_rate_schedule(dataclasses.replace(cfg, warmup_fraction=0.0), 10)
    np.testing.assert_allclose([float(flat(t)) for t in (0, 10, 20)], [0.5, 0.25, 0.0], atol=1e-7)


def test_adamw_matches_a_reference_implementation():
    """Decoupled decay, masked like AMSGrad's, scaled by the scheduled rate (numpy AdamW)."""
    cfg = TrainConfig(optimizer="adamw", learning_rate=0.1, weight_decay=0.3, epochs=1,
                      batch_size=1, warmup_fraction=0.5)
    steps = 4  # 4 batches of one example: 2 steps of warm-up, then 2 of decay
    rng = np.random.default_rng(0)
    params = {"attention": {"w": rng.normal(size=3)}, "encoder": {"w": rng.normal(size=(2, 3))}}
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)
    grads = _random_grads(params, steps, seed=1)
    got = _run(make_optimizer(cfg, train_size=steps), params, grads)

    ref = {k: np.asarray(v["w"], np.float64) for k, v in params.items()}
    m = {k: 0.0 for k in ref}
    v = {k: 0.0 for k in ref}
    for t, g in enumerate(grads):
        lr = 0.1 * (t / 2 if t < 2 else (4 - t) / 2)
        for k in ref:
            gk = np.asarray(g[k]["w"], np.float64)
            m[k] = 0.9 * m[k] + 0.1 * gk
            v[k] = 0.999 * v[k] + 0.001 * gk**2
            step = (m[k] / (1 - 0.9 ** (t + 1))) / (np.sqrt(v[k] / (1 - 0.999 ** (t + 1))) + 1e-8)
            decay = 0.3 * ref[k] if k != "attention" else 0.0
            ref[k] = ref[k] - lr * (step + decay)
    for k in ref:
        np.testing.assert_allclose(np.asarray(got[k]["w"]), ref[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.optimizer=sgd", "train.optimizer: 'sgd' is not one of amsgrad, adamw"),
        ("train.warmup_fraction=1.5", "train.warmup_fraction must be a finite"),
        ("train.warmup_fraction=-0.1", "train.warmup_fraction must be a finite"),
        ("train.warmup_fraction=0.3", "train.warmup_fraction is used only with"),
    ],
)
def test_bad_optimizer_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [override])
    assert err.value.key == override.split("=")[0]
    assert "\n" not in str(err.value)


def test_adamw_settings_load():
    cfg = load_config(None, ["train.optimizer=adamw", "train.warmup_fraction=0.25"]).train
    assert (cfg.optimizer, cfg.warmup_fraction) == ("adamw", 0.25)
    with pytest.raises(ValueError, match="needs the training split's size"):
        make_optimizer(cfg)
    with pytest.raises(ConfigError, match="train.optimizer: 'sgd'"):
        make_optimizer(dataclasses.replace(cfg, optimizer="sgd"))  # the Python API's path


# --------------------------------------------------------------------------------------------
# jaxattn.train with a given optimizer: frozen parameters, checkpoint and resume


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def small():
    import jaxattn
    from jaxattn.models.model import build_model

    data = jaxattn.prepare_data(jaxattn.DataConfig(name="synthetic", limit_train=240))
    model = build_model(vocab_size=len(data.vocab), task="binary", encoder="average",
                        embed_dim=16, hidden_size=8)
    return model, data


def _frozen_embeddings(lr: float = 1e-2) -> optax.GradientTransformation:
    labels = lambda params: {k: "frozen" if k == "embedder" else "train" for k in params}  # noqa: E731
    return optax.multi_transform({"train": optax.adam(lr), "frozen": optax.set_to_zero()}, labels)


def _interrupt_at_the_first_checkpoint(monkeypatch):
    """Stops the run at its first checkpoint: epoch 1 trained, not yet evaluated."""
    import jaxattn.runs.fit

    real = jaxattn.runs.fit.save_checkpoint

    def save_then_stop(path, state, meta):
        real(path, state, meta)
        raise Interrupted

    monkeypatch.setattr(jaxattn.runs.fit, "save_checkpoint", save_then_stop)
    return lambda: monkeypatch.setattr(jaxattn.runs.fit, "save_checkpoint", real)


def _same_run(a, b):
    (pa, ma), (pb, mb) = a, b
    jax.tree_util.tree_map(np.testing.assert_array_equal, pa, pb)
    assert [e["loss"] for e in ma["epochs"]] == [e["loss"] for e in mb["epochs"]]
    assert ma["test"] == mb["test"]


def test_a_given_optimizer_freezes_parameters_and_resumes_identically(tmp_path, small,
                                                                      monkeypatch):
    import jaxattn
    from jaxattn.training.trainer import first_batch

    model, data = small
    cfg = TrainConfig(epochs=2, buckets=(64,))
    init = model.init(jax.random.key(cfg.seed), first_batch(data.splits["train"]))
    full = jaxattn.train(model, data, cfg, out=tmp_path / "a", progress=False,
                         optimizer=_frozen_embeddings())
    params = full[0]
    np.testing.assert_array_equal(params["embedder"]["embedding"], init["embedder"]["embedding"])
    assert not np.allclose(params["decoder_out"]["kernel"], init["decoder_out"]["kernel"])
    default = jaxattn.train(model, data, cfg, out=tmp_path / "default", progress=False)[0]
    assert not np.allclose(default["embedder"]["embedding"], init["embedder"]["embedding"])

    restore = _interrupt_at_the_first_checkpoint(monkeypatch)
    with pytest.raises(Interrupted):
        jaxattn.train(model, data, cfg, out=tmp_path / "b", progress=False,
                      optimizer=_frozen_embeddings())
    restore()
    # Another optimizer state (or the config's default) cannot continue this checkpoint.
    from jaxattn.core.errors import RunError

    for other in (optax.sgd(1e-2), None):
        with pytest.raises(RunError, match="checkpoint of another config"):
            jaxattn.train(model, data, cfg, out=tmp_path / "b", progress=False, optimizer=other)
    resumed = jaxattn.train(model, data, cfg, out=tmp_path / "b", progress=False,
                            optimizer=_frozen_embeddings())
    assert [e["epoch"] for e in resumed[1]["epochs"]] == [1, 2]
    _same_run(resumed, full)


def test_adamw_from_the_config_resumes_identically(tmp_path, small, monkeypatch):
    import jaxattn

    model, data = small
    cfg = TrainConfig(epochs=2, buckets=(64,), optimizer="adamw", learning_rate=1e-2)
    full = jaxattn.train(model, data, cfg, out=tmp_path / "a", progress=False)
    restore = _interrupt_at_the_first_checkpoint(monkeypatch)
    with pytest.raises(Interrupted):
        jaxattn.train(model, data, cfg, out=tmp_path / "b", progress=False)
    restore()
    from jaxattn.core.errors import RunError

    # The schedule spans the epochs: a checkpoint is not continued under another count.
    with pytest.raises(RunError, match="checkpoint of another config"):
        jaxattn.train(model, data, dataclasses.replace(cfg, epochs=3), out=tmp_path / "b",
                      progress=False)
    _same_run(jaxattn.train(model, data, cfg, out=tmp_path / "b", progress=False), full)
    amsgrad = jaxattn.train(model, data, dataclasses.replace(cfg, optimizer="amsgrad"),
                            out=tmp_path / "c", progress=False)
    assert amsgrad[1]["epochs"][0]["loss"] != full[1]["epochs"][0]["loss"]


def test_the_default_checkpoint_format_is_unchanged():
    """A checkpoint written before ``train.optimizer`` existed still matches (amsgrad)."""
    from jaxattn.runs.fit import checkpoint_meta

    cfg = TrainConfig()
    before = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in ("epochs", "patience", "optimizer", "warmup_fraction")}
    assert checkpoint_meta(cfg) == {"members": 1, "train": before}
    adamw = checkpoint_meta(dataclasses.replace(cfg, optimizer="adamw"))["train"]
    assert adamw["epochs"] == cfg.epochs and adamw["optimizer"] == "adamw"


def test_an_adamw_run_directory_continues_only_with_the_same_epochs():
    from jaxattn.runs.run import _only_extends_training

    base = ["train.epochs=2", "train.patience=1"]
    amsgrad = [load_config(None, base + [f"train.epochs={n}"]) for n in (2, 3)]
    adamw = [load_config(None, base + ["train.optimizer=adamw", f"train.epochs={n}"])
             for n in (2, 3)]
    assert _only_extends_training(*amsgrad)
    assert not _only_extends_training(*adamw)
    more_patience = load_config(None, base + ["train.optimizer=adamw", "train.patience=2"])
    assert _only_extends_training(adamw[0], more_patience)
    assert not _only_extends_training(amsgrad[0], adamw[0])
