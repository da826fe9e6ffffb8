"""The examples run as written to a report: a model of one's own (custom_model.py) and a stage
of one's own (custom_stage.py), which then caches, shows in the report and adds its verdict row;
the stage's vectorised occlusion equals a loop over windows."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jaxattn
from jaxattn.core.errors import ConfigError
from jaxattn.studies import registry
from tests.helpers import chromium_dom, first_table_class, toy_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses defined in the example look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def _registry_restored():
    """The stages registered here leave the registry as they found it: other tests in the
    process analyse with every registered stage."""
    before = dict(registry.REGISTRY)
    yield
    registry.REGISTRY.clear()
    registry.REGISTRY.update(before)


@pytest.fixture(scope="module")
def custom_stage():
    return _load("custom_stage")


def test_occlusion_equals_a_loop_over_windows(custom_stage):
    model, params, batch = toy_model("binary", "average", "additive")
    got = np.asarray(custom_stage.occlusion(model, params, batch, None)["occlusion"])
    probs = np.asarray(model.probs(jaxattn.forward(model, params, batch)[0]))
    embedded = np.asarray(model.embed(params, batch.tokens))
    mask = np.asarray(batch.mask)
    for b in range(mask.shape[0]):
        target, drops = int(np.argmax(probs[b])), np.zeros(mask.shape[1])
        for t in np.flatnonzero(mask[b]):
            e = embedded.copy()
            for s in range(t - custom_stage.WIDTH, t + custom_stage.WIDTH + 1):
                if 0 <= s < mask.shape[1] and mask[b, s]:
                    e[b, s] = 0.0
            enc = model.encode_embedded(params, batch, jnp.asarray(e))
            p = np.asarray(model.probs(model.decode(params, enc, model.attend(params, enc))))
            drops[t] = abs(probs[b, target] - p[b, target])
        np.testing.assert_allclose(got[b], drops / max(drops.sum(), 1e-12), atol=1e-5)


def test_custom_stage_runs_caches_reports_and_votes(custom_stage, tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--set", "data.name=synthetic", "--set", "data.limit_train=200", "--set",
            "model.encoder=average", "--set", "model.embed_dim=8", "--set", "model.hidden_size=4",
            "--set", "train.buckets=[64]", "--limit", "8"]
    custom_stage.main(["--out", str(out), *tiny])
    assert "occlusion" in jaxattn.list_stages()
    analysis = out / "analysis"
    stage_file = analysis / "occlusion.npz"
    first = stage_file.read_bytes()
    page = (analysis / "index.html").read_text()
    assert "occlusion (window 3)" in page and "Occlusion vs attention" in page
    assert not (analysis / "perm.npz").exists()  # only the stages asked for (and attention)
    # Again: the stage is found in the cache, not computed.
    capsys.readouterr()
    custom_stage.main(["--out", str(out), *tiny])
    said = capsys.readouterr()
    assert "occlusion: reusing 8 rows" in said.out + said.err
    assert stage_file.read_bytes() == first


def test_a_different_stage_under_a_taken_name_is_refused(custom_stage):
    registry.register_stage(custom_stage.STAGE)
    registry.register_stage(custom_stage.STAGE)  # the same stage again: fine
    other = jaxattn.Stage("occlusion", custom_stage.occlusion, ("occlusion",), version=2)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_stage(other)


def test_stage_streams_come_from_names():
    assert registry.stream(registry.get_stage("perm")) == 1  # kept: earlier results stay valid
    a = jaxattn.Stage("my_stage_a")
    b = jaxattn.Stage("my_stage_b")
    assert registry.stream(a) != registry.stream(b)
    assert registry.stream(a) == registry.stream(jaxattn.Stage("my_stage_a"))


def test_custom_model_runs_to_a_report(tmp_path):
    custom_model = _load("custom_model")
    out = tmp_path / "custom"
    custom_model.main(["--out", str(out), "--epochs", "1", "--limit", "6",
                       "--limit-train", "200", "--buckets", "64"])
    page = (out / "analysis" / "index.html").read_text()
    assert "running mean (custom)" in page and "Verdict" in page
    # as a browser shows it: the verdict table first, a table of contents, no JSON dump
    dom = chromium_dom(out / "analysis" / "index.html")
    assert first_table_class(dom) == "verdict" and 'class="toc"' in dom
    assert not re.search(r'\{"[^"]*": ', dom)  # a JSON object's first key
