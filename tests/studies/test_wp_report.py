"""The W&P page's words: which adversary the diagnostic imposes, and the options as a table."""

import re

from jaxattn.studies.wiegreffe_pinter.report import adversary_choice, options_table


def test_the_chosen_adversary_is_plain_english():
    closest = adversary_choice({"lambda": 0.001, "rule": "closest", "threshold": 0.0251,
                                "threshold_source": "the retrained seeds' mean dev TVD to the "
                                "base model", "dev_tvd": 0.0412})
    assert closest == (
        "The diagnostic imposes the attention of the adversary trained with lambda 0.001. No "
        "adversary kept its outputs within a mean dev TVD of at most 0.0251 (the retrained "
        "seeds' mean dev TVD to the base model), so the one whose outputs are closest to the "
        "base model's is used (the smallest mean dev TVD, 0.0412).")
    consistent = adversary_choice({"lambda": 1.0, "rule": "most_different_consistent",
                                   "threshold": 0.1, "threshold_source": None})
    assert "lambda 1." in consistent and "at most 0.1000)" in consistent
    assert "the largest dev JSD" in consistent
    pinned = adversary_choice({"lambda": 10.0, "rule": "diagnostic_lambda"})
    assert pinned.endswith("lambda 10, as the diagnostic_lambda option asks.")
    for text in (closest, consistent, pinned):
        assert "<=" not in text and ";" not in text and text.endswith(".")


def test_older_results_read_the_same():
    old = {"lambda": 0.001, "chosen_by": "no mean dev TVD <= 0.0251; the smallest dev TVD "
           "(threshold: mean dev TVD of the seeds to the base)"}
    sweep = [{"lambda": 0.001, "dev_tvd": 0.0412}, {"lambda": 1.0, "dev_tvd": 0.3}]
    assert adversary_choice(old, sweep) == adversary_choice(
        {"lambda": 0.001, "rule": "closest", "threshold": 0.0251, "dev_tvd": 0.0412,
         "threshold_source": "the retrained seeds' mean dev TVD to the base model"})
    older = {"lambda": 1.0, "chosen_by": "the largest dev JSD among mean dev TVD <= 0.0500 "
             "(threshold: fallback (no seeds stage))"}
    assert "at most 0.0500 (a fixed fallback, as the seeds stage has not run)" in (
        adversary_choice(older))


def test_options_are_a_table_not_json():
    table = options_table({"epochs": 4, "learning_rate": 0.001, "summed": False,
                           "lambdas": [0.1, 1.0], "kl_eps": None})
    assert "{" not in table and '"' not in table.replace('class="dataset options"', "")
    rows = re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", table)
    assert rows == [("epochs", "4"), ("learning_rate", "0.001"), ("summed", "no"),
                    ("lambdas", "0.1, 1"), ("kl_eps", "–")]
