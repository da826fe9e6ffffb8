"""HTML reports: escaping, heatmap shading, a complete page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np

from jaxattn.report import html


def test_token_heatmap_rows_and_shading():
    out = html.token_heatmap_html(
        ["good", "<b>", "film"],
        {"attention": np.array([0.2, 0.6, 0.2]), "gradient": np.array([-0.5, 0.0, 0.25])},
        marks=[True, False, False],
    )
    assert out.count("<tr>") == 2
    assert "&lt;b&gt;" in out and "<b>" not in out
    alphas = [float(a) for a in re.findall(r"rgba\(\d+,\d+,\d+,([0-9.]+)\)", out)]
    # Each row is shaded relative to its own largest magnitude.
    np.testing.assert_allclose(alphas, [1 / 3, 1.0, 1 / 3, 1.0, 0.0, 0.5], atol=1e-3)
    assert out.count('class="tok mark"') == 2  # the marked token, in both rows


def test_page_is_well_formed_and_self_contained(tmp_path):
    body = html.section("Figures", html.figure_html("a.png", "cap & more"), "figs")
    doc = html.page("Title <1>", [body], nav=[("other", "../wp/index.html")])
    path = html.write_page(tmp_path / "index.html", doc)
    text = path.read_text()
    assert "<style>" in text and "http" not in text
    assert 'href="../wp/index.html"' in text and 'src="a.png"' in text
    assert "Title &lt;1&gt;" in text and "cap &amp; more" in text

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack = []

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "img"):
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    checker = Checker()
    checker.feed(text)
    assert checker.stack == []


def test_every_page_has_contents_linking_each_section():
    sections = [html.section("Verdict", "<p>v</p>", "verdict"),
                html.section("Time per stage", "<p>t</p>"),
                html.section("A & B", "<p>ab</p>", "ab")]
    doc = html.page("T", sections)
    toc = re.search(r'<nav class="toc".*?</nav>', doc).group(0)
    links = re.findall(r'<a href="#([^"]+)">([^<]*)</a>', toc)
    assert links == [("verdict", "Verdict"), ("time-per-stage", "Time per stage"),
                     ("ab", "A &amp; B")]
    for anchor, _ in links:  # every link has its target
        assert doc.count(f'id="{anchor}"') == 1
    assert doc.index(toc) < doc.index('<section id="verdict">')
    assert doc.count('href="#top"') == 3 and '<h1 id="top">' in doc


def test_the_top_page_link_finds_the_reproduce_page_above_the_run(tmp_path):
    run = tmp_path / "out" / "run"
    (run / "analysis" / "views" / "test-8").mkdir(parents=True)
    (run / "wp").mkdir()
    (run / "metrics.json").write_text("{}")
    assert html.top_page_href(run / "analysis") is None  # no top page yet
    (tmp_path / "out" / "index.html").write_text(html.page("other page", []))
    assert html.top_page_href(run / "analysis") is None  # not one reproduce wrote
    html.write_page(tmp_path / "out" / "index.html", html.page("top", [], top_page=True))
    assert html.top_page_href(run / "analysis") == "../../index.html"
    assert html.top_page_href(run / "wp") == "../../index.html"
    assert html.top_page_href(run / "analysis" / "views" / "test-8") == "../../../../index.html"
    doc = html.page("J&W", [], top=html.top_page_href(run / "wp"))
    assert re.search(r'<nav><a href="\.\./\.\./index\.html">[^<]*top page', doc)
