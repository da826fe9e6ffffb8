"""Mixed precision (``train.precision = "bfloat16"``): bfloat16 compute, float32 parameters;
the option runs on a CPU and its results stay close to float32's."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxattn.config import ConfigError, load_config
from jaxattn.runs.run import train_run
from jaxattn.runtime.precision import compute_params
from jaxattn.training.objective import LEARNED
from jaxattn.training.optimizers import make_optimizer
from jaxattn.training.trainer import make_train_step
from tests.helpers import toy_model

ROOT = Path(__file__).resolve().parents[2]


def test_compute_params_casts_floats_only():
    tree = {"w": jnp.ones((2, 2)), "n": jnp.arange(3)}
    out = compute_params(tree, "bfloat16")
    assert out["w"].dtype == jnp.bfloat16 and out["n"].dtype == tree["n"].dtype
    assert compute_params(tree, "float32") is tree


@pytest.mark.parametrize("encoder", ["bilstm", "cnn", "average", "transformer"])
def test_bfloat16_step_updates_float32_params_close_to_float32(encoder):
    model, params, batch = toy_model("binary", encoder, "additive")
    cfg = load_config(None, []).train
    opt = make_optimizer(cfg)
    results = {}
    for precision in ("float32", "bfloat16"):
        step = make_train_step(model, opt, LEARNED, precision)
        p = jax.tree_util.tree_map(jnp.copy, params)
        new, _, loss = step(p, opt.init(p), batch, jnp.float32(1.0), None)
        assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(new))
        results[precision] = (float(loss), new)
    (l32, p32), (l16, p16) = results["float32"], results["bfloat16"]
    assert l16 != l32 and abs(l16 - l32) <= 0.02 * abs(l32) + 1e-2
    # One AMSGrad step moves each weight by about the learning rate; bfloat16 gradients may flip
    # the sign of a near-zero one, never move a weight by more than the step.
    for a, b in zip(jax.tree_util.tree_leaves(p32), jax.tree_util.tree_leaves(p16)):
        assert float(jnp.abs(a - b).max()) <= 2.5 * cfg.learning_rate


def test_bfloat16_training_stays_close(tmp_path):
    base = ["data.name=file", f"data.train_file={ROOT / 'examples' / 'data' / 'reviews.csv'}",
            "train.epochs=3", "model.embed_dim=16", "model.hidden_size=8", "train.batch_size=16"]
    scores = {}
    for precision in ("float32", "bfloat16"):
        cfg = load_config(None, [*base, f"train.precision={precision}"])
        scores[precision] = train_run(cfg, tmp_path / precision, progress=False)["test"]
    assert np.isfinite(scores["bfloat16"]["auc"])
    assert abs(scores["bfloat16"]["accuracy"] - scores["float32"]["accuracy"]) <= 0.1


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(None, ["train.precision=float16"])
