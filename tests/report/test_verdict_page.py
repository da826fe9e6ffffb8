"""The verdict section, the combined matrix and the data-set table, as HTML and in Chromium."""

from __future__ import annotations

import re

from jaxattn.report import html
from jaxattn.report.tables import html_table
from jaxattn.report.verdict import VERDICT_ROWS, Evidence
from jaxattn.report.verdict_page import (
    dataset_table_html,
    run_evidence,
    verdict_markdown,
    verdict_matrix_html,
    verdict_section,
)
from jaxattn.runtime.files import write_json
from tests.helpers import chromium_dom, first_table_class

SUMMARY = {
    "setting": {"dataset": "sst2", "encoder": "bilstm"},
    "kendall": {p: {"overall": {"mean": m}} for p, m in
                (("attn_grad", 0.2), ("attn_loo", 0.25), ("grad_loo", 0.5))},
    "permutation": {"median_tvd": {"overall": {"mean": 0.01}}},
}


def test_verdict_section_opens_with_sentence_and_one_row_per_test():
    section = verdict_section(Evidence(jw=SUMMARY, jw_page="", run="runs/a<b"))
    assert section.startswith('<section id="verdict">')
    assert section.count("<tr>") == 1 + len(VERDICT_ROWS)  # header + rows
    assert 'href="#table2"' in section and 'href="#stage-perm"' in section
    assert 'class="v-against"' in section and 'class="v-not-run"' in section
    assert "runs/a&lt;b" in section  # escaped
    sentence = re.search(r'<p class="verdict-sentence">(.*?)</p>', section).group(1)
    assert sentence.startswith("The tests lean against")
    md = verdict_markdown(Evidence(jw=SUMMARY, jw_page=""))
    assert md.count("\n| ") == 1 + len(VERDICT_ROWS)


def test_a_model_that_learned_nothing_gets_the_warning_in_its_own_paragraph():
    at_chance = {**SUMMARY, "setting": {**SUMMARY["setting"], "test_scores": {
        "accuracy": 0.51, "majority": 0.5, "n": 1821}}}
    section = verdict_section(Evidence(jw=at_chance, jw_page=""))
    caveat = re.search(r'<p class="verdict-caveat">(.*?)</p>', section).group(1)
    assert caveat.startswith("Read with care: this model&#x27;s test accuracy (0.510 over 1,821)")
    sentence = re.search(r'<p class="verdict-sentence">(.*?)</p>', section).group(1)
    assert "Read with care" not in sentence
    assert "Read with care" in verdict_markdown(Evidence(jw=at_chance, jw_page=""))
    learned = {**SUMMARY, "setting": {**SUMMARY["setting"], "test_scores": {
        "accuracy": 0.88, "majority": 0.5, "n": 1821}}}
    assert "verdict-caveat" not in verdict_section(Evidence(jw=learned, jw_page=""))


def test_run_evidence_reads_both_suites_and_links_them_from_the_page(tmp_path):
    run = tmp_path / "run"
    write_json(run / "analysis" / "summary.json", SUMMARY)
    ev = run_evidence(run, tmp_path)
    assert ev.jw == SUMMARY and ev.wp is None
    assert ev.jw_page == "run/analysis/index.html" and ev.wp_page is None
    write_json(run / "wp" / "summary.json", {"base": {"f1": 0.8}, "uniform": {"f1": 0.8}})
    ev = run_evidence(run, run / "wp")
    assert ev.jw_page == "../analysis/index.html" and ev.wp_page == "index.html"


def test_matrix_has_a_column_per_model():
    matrix = verdict_matrix_html({"SST / bilstm": Evidence(jw=SUMMARY, jw_page="a/index.html"),
                                  "SST / cnn": Evidence()})
    assert matrix.count("<th>") == 3 and matrix.count("<tr>") == 1 + len(VERDICT_ROWS)
    assert 'href="a/index.html#table2"' in matrix


def test_dataset_table_is_a_table_not_json():
    info = {"name": "sst2", "task": "binary", "label_names": ["negative", "positive"],
            "sizes": {"train": 6703, "dev": 864, "test": 1800}, "notes": ["a", "b"], "extra": 1}
    table = dataset_table_html(info)
    assert "<th>instances</th><td>train 6703, dev 864, test 1800</td>" in table
    assert "<th>classes</th><td>negative, positive</td>" in table
    assert "<th>extra</th><td>1</td>" in table and "{" not in table


def test_chromium_renders_the_page_with_the_verdict_table_first(tmp_path):
    page = tmp_path / "index.html"
    other = html.section("Table 2", html_table([{"a": 1}]), "table2")
    html.write_page(page, html.page("report", [verdict_section(Evidence(jw=SUMMARY, jw_page="")),
                                               other]))
    dom = chromium_dom(page)
    assert '<h1 id="top">report</h1>' in dom and first_table_class(dom) == "verdict"
    assert dom.count('<td class="v-') == len(VERDICT_ROWS)


def test_the_verdict_table_fits_the_window_with_long_commands_in_its_readings(tmp_path):
    # The readings of tests not run name the command to run, with the run's path: a long path
    # must wrap inside its cell, not push the evidence column off the page.
    page = tmp_path / "index.html"
    run = "runs/" + "a_long_run_directory_name_" * 4 + "minilm"
    text = html.page("report", [verdict_section(Evidence(jw=SUMMARY, jw_page="", run=run))])
    measure = ('<script>const t = document.querySelector("table.verdict");'
               'document.body.dataset.fits = String(t.getBoundingClientRect().right <= '
               'document.documentElement.clientWidth);</script>')
    html.write_page(page, text.replace("</body>", measure + "</body>"))
    dom = chromium_dom(page)
    assert run in dom and 'data-fits="true"' in dom
