"""jaxattn: is attention an explanation? The model contract, the analyses, training and studies.

    import jaxattn
    jaxattn.check_model(model)                           # your model satisfies the contract
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="sst2"))
    params, metrics = jaxattn.train(model, data, jaxattn.TrainConfig(), out="runs/mine")
    report = jaxattn.analyze(model, params, data, out="runs/mine/analysis")

Names are imported on first use, so ``import jaxattn`` (and the command line's error paths) stay
fast and JAX is loaded only when needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> (module, attribute)
_EXPORTS = {
    "BaseModel": ("jaxattn.core.protocol", "BaseModel"),
    "AttentionModel": ("jaxattn.core.protocol", "AttentionModel"),
    "HeadMaps": ("jaxattn.core.protocol", "HeadMaps"),
    "capabilities": ("jaxattn.core.protocol", "capabilities"),
    "FeaturizedModel": ("jaxattn.core.protocol", "FeaturizedModel"),
    "Batch": ("jaxattn.core.protocol", "Batch"),
    "Inputs": ("jaxattn.core.protocol", "Inputs"),
    "Encoded": ("jaxattn.core.protocol", "Encoded"),
    "check_model": ("jaxattn.core.protocol", "check_model"),
    "forward": ("jaxattn.core.protocol", "forward"),
    "masked_softmax": ("jaxattn.models.attention", "masked_softmax"),
    "Config": ("jaxattn.config", "Config"),
    "DataConfig": ("jaxattn.config", "DataConfig"),
    "TrainConfig": ("jaxattn.config", "TrainConfig"),
    "load_config": ("jaxattn.config", "load_config"),
    "Prepared": ("jaxattn.data.prepare", "Prepared"),
    "prepare_data": ("jaxattn.data.prepare", "prepare"),
    "train": ("jaxattn.fit", "train_model"),
    "analyze": ("jaxattn.studies.jain_wallace.analyze", "analyze"),
    "gradient_importance": ("jaxattn.importance", "gradient_importance"),
    "gradient_importances": ("jaxattn.importance", "gradient_importances"),
    "integrated_gradients": ("jaxattn.importance", "integrated_gradients"),
    "leave_one_out": ("jaxattn.importance", "leave_one_out"),
    "permute_attention": ("jaxattn.interventions", "permute_attention"),
    "search_adversarial_attention": ("jaxattn.interventions", "search_adversarial_attention"),
    "agreement_measures": ("jaxattn.agreement", "agreement_measures"),
    "kendall_tau": ("jaxattn.agreement", "kendall_tau"),
    "tvd": ("jaxattn.metrics", "tvd"),
    "jsd": ("jaxattn.metrics", "jsd"),
    "kl": ("jaxattn.metrics", "kl"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jaxattn' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
