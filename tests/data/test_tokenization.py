"""The word tokenizer over Unicode text (docs/tokenization.md): words in every script, NFC,
invisible controls as spaces, and ASCII text tokenised exactly as by the ASCII-only pattern."""

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxattn.data import vocab
from jaxattn.data.vocab import clean_tokens, is_blank


@pytest.mark.parametrize(
    "text, tokens",
    [
        # Latin with accents: one word each, not "caf é".
        ("Café au lait, CRÈME brûlée!", ["café", "au", "lait", ",", "crème", "brûlée", "!"]),
        ("l'été über-cool naïve", ["l'été", "über-cool", "naïve"]),
        ("Straße ÆSIR Łódź", ["straße", "æsir", "łódź"]),
        # Cyrillic and Greek (a final capital sigma lower-cases to the final form).
        ("Привет, мир! Это тест.", ["привет", ",", "мир", "!", "это", "тест", "."]),
        ("Καλημέρα κόσμε ΟΔΟΣ", ["καλημέρα", "κόσμε", "οδος"]),
        # Right-to-left scripts, with Arabic-Indic digits and Hebrew points.
        ("مرحبا بالعالم ١٢٣؟", ["مرحبا", "بالعالم", "١٢٣", "؟"]),
        ("שָׁלוֹם עולם", ["שָׁלוֹם", "עולם"]),
        # Han and hiragana: one token per character; katakana runs are words.
        ("我喜欢这部电影。", ["我", "喜", "欢", "这", "部", "电", "影", "。"]),
        ("コーヒーが好き", ["コーヒー", "が", "好", "き"]),
        ("한국어 문장입니다", ["한국어", "문장입니다"]),
        # Devanagari: vowel signs and virama (combining marks) stay in their word; digits stay.
        ("हिन्दी में पाठ १९", ["हिन्दी", "में", "पाठ", "१९"]),
        # Emoji: a skin tone, a variation selector and a flag belong to their emoji.
        ("great 👍🏽 film 🇫🇷 ❤️!", ["great", "👍🏽", "film", "🇫🇷", "❤️", "!"]),
        # Non-ASCII punctuation and symbols are single tokens, as ASCII ones are.
        ("«Oui» — don’t…", ["«", "oui", "»", "—", "don", "’", "t", "…"]),
        ("x² costs 5€", ["x²", "costs", "5", "€"]),
    ],
)
def test_words_in_many_scripts(text, tokens):
    assert clean_tokens(text) == tokens
    assert clean_tokens(unicodedata.normalize("NFD", text)) == tokens


def test_nfc_and_nfd_spellings_are_one_token():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert composed != decomposed
    assert clean_tokens(composed) == clean_tokens(decomposed) == ["caf\u00e9"]
    assert clean_tokens(decomposed, pretokenized=True) == ["caf\u00e9"]
    # Hangul jamo compose to the syllable.
    assert clean_tokens("\u1112\u1161\u11ab") == ["\ud55c"]


@pytest.mark.parametrize(
    "control", ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066",
                "\u2069", "\u2060", "\ufeff"]
)
def test_zero_width_and_bidi_controls_are_spacing(control):
    assert clean_tokens(f"caf{control}\u00e9 bar") == ["caf", "\u00e9", "bar"]
    assert clean_tokens(f"{control}good{control} film{control}") == ["good", "film"]
    assert clean_tokens(f"a{control}b c", pretokenized=True) == ["a", "b", "c"]
    assert clean_tokens(control * 3) == [] and clean_tokens(control * 3, pretokenized=True) == []
    assert is_blank(f" {control}\t{control}") and not is_blank(f"{control}a")
    # A joiner between emoji is spacing too: the family is its three people.
    assert clean_tokens("👨\u200d👩\u200d👧") == ["👨", "👩", "👧"]


def test_nothing_is_dropped():
    # Every character that is not whitespace or an invisible control is in some token, in order.
    text = "\u0301lone mark, ½ ⅷ ① \u00ad soft\u00adhyphen \U0001f600\U0001f600 a_b"
    tokens = clean_tokens(text)
    assert "".join(tokens) == re.sub(r"\s", "", unicodedata.normalize("NFC", text))
    assert tokens[:2] == ["\u0301", "lone"] and "a" in tokens and "_" in tokens


def test_ascii_tokens_are_unchanged():
    assert clean_tokens("It's 2 GOOD,<br />really 1999! a--b rock'n'roll x_y") == [
        "it's", "2", "good", ",", "really", "1999", "!", "a", "-", "-", "b", "rock'n'roll",
        "x", "_", "y",
    ]


_ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_ASCII)
def test_the_unicode_pattern_on_ascii_text_is_the_ascii_pattern(text):
    # clean_tokens takes the fast stdlib pattern for ASCII text: the Unicode one must agree.
    prepared = vocab.normalize_text(text)
    spaced = vocab._SPACING.sub(" ", prepared)
    assert vocab._UNICODE_TOKEN.findall(spaced) == vocab._TOKEN.findall(prepared)
    # and a non-ASCII word next to it changes nothing else
    assert clean_tokens(text + " \u00e9t\u00e9") == clean_tokens(text) + ["\u00e9t\u00e9"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_tokens_are_nfc_and_hold_no_space_or_control(text):
    for pretokenized in (False, True):
        tokens = clean_tokens(text, pretokenized=pretokenized)
        assert clean_tokens(unicodedata.normalize("NFD", text), pretokenized=pretokenized) == tokens
        for token in tokens:
            assert token and unicodedata.is_normalized("NFC", token)
            assert not any(c.isspace() for c in token) and not vocab._SPACING.search(token)
