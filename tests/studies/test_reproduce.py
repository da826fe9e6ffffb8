"""``jaxattn reproduce`` end to end on the generated task (the J&W suite; W&P has its own tests)."""

import json

from jaxattn.cli import main
from tests.helpers import chromium_dom, first_table_class

TINY = ["data.limit_train=200", "train.epochs=1", "model.embed_dim=16", "model.hidden_size=8",
        "train.buckets=[48]"]  # one padded length: the texts have 16 to 40 words and SOS, EOS


def test_reproduce_trains_analyses_links_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["reproduce", "--suite", "jain_wallace", "--encoder", "average", "--limit", "24",
            "--out", str(out), "--quiet"]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    index = out / "index.html"
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"report: {index.resolve()}"
    assert [line.split(":")[0] for line in printed[-3:]] == ["verdict", "test", "report"]
    assert sum(line.startswith(("report:", "verdict:", "test:")) for line in printed) == 3
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    # The default task is the one that needs attention (the planted-rationale one does not).
    assert metrics["data"]["name"] == "synthetic_aspects"
    assert metrics["data"]["sizes"]["train"] == 200
    summary = json.loads((out / "run" / "analysis" / "summary.json").read_text())
    assert summary["n"] == 24
    assert 0.0 <= summary["adversarial"]["frac_found"] <= 1.0
    page = index.read_text()
    assert 'href="run/analysis/index.html"' in page and 'href="run/wp/index.html"' not in page
    # The study page links back to this one, and lists its sections.
    jw_page = (out / "run" / "analysis" / "index.html").read_text()
    assert '<nav><a href="../../index.html">' in jw_page and 'class="toc"' in jw_page
    # The page opens with the verdict; the data set is a table, not JSON.
    dom = chromium_dom(index)
    assert first_table_class(dom) == "verdict"
    assert 'href="run/analysis/index.html#table2"' in dom  # the evidence of the tau row
    assert "jaxattn wp --run" in dom  # W&P rows say how to run them
    assert "<th>instances</th><td>train 200," in dom and '"sizes"' not in dom
    assert first_table_class(chromium_dom(out / "run" / "analysis" / "index.html")) == "verdict"
    assert (out / "run" / "analysis" / "index.html").exists()

    # A second call finds the training and every analysis stage done: none is recomputed (the
    # report, agreement.npz included, is derived from them and rebuilt).
    stages = ["params.msgpack", *(f"analysis/{s}.npz" for s in ("attention", "grad", "loo", "ig", "perm", "adv"))]
    before = {s: (out / "run" / s).stat().st_mtime_ns for s in stages}
    assert main(args) == 0
    after = {s: (out / "run" / s).stat().st_mtime_ns for s in stages}
    assert after == before
