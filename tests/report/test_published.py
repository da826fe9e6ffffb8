"""The published J&W Table 2, as transcribed from the protocol."""

from __future__ import annotations

from jaxattn.report.published import (
    ENCODERS,
    TABLE2,
    published_class,
    published_setting_for,
    published_tau,
)


def test_every_row_has_all_six_cells():
    assert set(TABLE2) == {
        "sst2",
        "imdb",
        "20news_sports",
        "ag_news",
        "babi1",
        "babi2",
        "babi3",
        "snli",
    }
    for classes in TABLE2.values():
        for cells in classes.values():
            assert set(cells) == {"grad", "loo"}
            for measure in cells.values():
                assert set(measure) == set(ENCODERS)
    assert set(TABLE2["snli"]) == {"0", "1", "2"} and set(TABLE2["babi2"]) == {"all"}


def test_spot_values():
    assert published_tau("sst2", "0", "grad", "bilstm") == (0.40, 0.21)
    assert published_tau("imdb", "1", "loo", "average") == (0.63, 0.06)
    assert published_tau("20news_sports", "0", "grad", "bilstm") == (0.08, 0.15)
    assert published_tau("babi2", "all", "loo", "average") == (0.93, 0.03)
    assert published_tau("snli", "2", "loo", "cnn") == (0.30, 0.23)
    assert published_tau("synthetic", "0", "grad", "bilstm") is None


def test_published_setting():
    assert published_setting_for("sst2")["embeddings"] == "fasttext"
    assert published_setting_for("babi1")["embeddings"] == "random"
    assert published_setting_for("sst2")["selection"] == "test"


def test_classes_are_matched_by_name():
    assert published_class("snli", "contradiction") == "0"
    assert published_class("snli", "entailment") == "1"
    assert published_class("ag_news", "business") == "1"
    assert published_class("sst2", "neutral") is None and published_class("synthetic", "x") is None
