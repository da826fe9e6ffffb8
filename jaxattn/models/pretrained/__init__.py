"""Pretrained Transformer encoders read from Hugging Face folders (BERT family)."""

from jaxattn.core.errors import PretrainedError
from jaxattn.models.pretrained.bert import Bert, BertConfig, BertOutput
from jaxattn.models.pretrained.classifier import (
    HEADS,
    BertAttentionClassifier,
    BertClsClassifier,
    BertEncoded,
    bert_classifier,
)
from jaxattn.models.pretrained.heads import (
    additive_attention,
    additive_decode,
    cls_logits,
    init_additive_head,
)
from jaxattn.models.pretrained.hf_files import (
    Pretrained,
    load_folder,
    read_config,
    read_params,
    write_folder,
)
from jaxattn.models.pretrained.hf_tokenizer import (
    Tokenized,
    read_tokenizer,
    sum_over_words,
    tokenize,
    word_index,
)
from jaxattn.models.pretrained.packaged import minilm_folder, minilm_installed

__all__ = [
    "Bert",
    "BertAttentionClassifier",
    "BertClsClassifier",
    "BertEncoded",
    "HEADS",
    "bert_classifier",
    "BertConfig",
    "BertOutput",
    "Pretrained",
    "PretrainedError",
    "Tokenized",
    "additive_attention",
    "additive_decode",
    "cls_logits",
    "init_additive_head",
    "load_folder",
    "minilm_folder",
    "minilm_installed",
    "read_config",
    "read_params",
    "read_tokenizer",
    "sum_over_words",
    "tokenize",
    "word_index",
    "write_folder",
]
