"""The training section of a run configuration (``[train]``). Checked with the rest of the
configuration by :mod:`jaxattn.config`."""

from __future__ import annotations

import dataclasses

ATTENTION_SOURCES = ("learned", "uniform", "imposed")
SELECTION_SPLITS = ("dev", "test")
PRECISIONS = ("float32", "bfloat16")  # training compute; parameters stay float32
OPTIMIZERS = ("amsgrad", "adamw")  # jaxattn.training.optimizers.make_optimizer


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 32
    eval_batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    selection: str = "dev"  # the paper-era code selected on "test"
    attention: str = (
        "learned"  # "uniform" freezes 1/len; "imposed" takes attention from `imposed_run`
    )
    imposed_run: str = ""
    sort_noise: float = 0.1  # relative length noise before sorting into batches
    buckets: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    patience: int = 0  # stop after this many epochs without a better selection score; 0: off
    precision: str = "float32"  # "bfloat16": bfloat16 compute, float32 parameters (precision.py)
    # Deceptive attention (jaxattn/training/penalties.py): loss + weight * -log(1 - attention mass on the
    # impermissible tokens): those spelled as in impermissible_words, or () -> the data's rationale.
    deception_weight: float = 0.0
    impermissible_words: tuple[str, ...] = ()
    # "amsgrad": Adam(amsgrad) + L2 weight decay at a constant learning rate (the protocol);
    # "adamw": decoupled weight decay, the learning rate warmed up linearly from 0 over
    # warmup_fraction of all steps (epochs x batches), then decayed linearly to 0 (docs/training.md).
    optimizer: str = "amsgrad"
    warmup_fraction: float = 0.1  # adamw only
    # Pretrained encoders: the learning rate of layer l (of L) is lr * layer_decay ** (L - l),
    # the embeddings' lr * layer_decay ** (L + 1), the head's lr (1: one rate for all); and
    # freeze_embeddings keeps the embedding tables as loaded.
    layer_decay: float = 1.0
    freeze_embeddings: bool = False
