"""jaxattn: is attention an explanation? The model contract, the analyses, training and studies.

    import jaxattn
    jaxattn.check_model(model)                           # your model satisfies the contract
    data = jaxattn.prepare_data(jaxattn.DataConfig(name="sst2"))
    config = jaxattn.TrainConfig()
    params, metrics = jaxattn.train(model, data, config, out="runs/mine")
    report = jaxattn.analyze(model, params, data, out="runs/mine/analysis")
    wp = jaxattn.wiegreffe_pinter(model, params, data, out="runs/mine/wp", config=config)

The public names are listed here, explicitly; everything else is reached through its layer
(``jaxattn.core``, ``jaxattn.runtime``, ``jaxattn.data``, ``jaxattn.models``,
``jaxattn.explain``, ``jaxattn.training``, ``jaxattn.config``, ``jaxattn.runs``,
``jaxattn.report``, ``jaxattn.studies``, ``jaxattn.interop``, ``jaxattn.cli``).
"""

from jaxattn.config import Config as Config
from jaxattn.config import load_config as load_config
from jaxattn.core.checks import check_model as check_model
from jaxattn.core.checks import check_model_outputs as check_model_outputs
from jaxattn.core.errors import ConfigError as ConfigError
from jaxattn.core.errors import JaxattnError as JaxattnError
from jaxattn.core.metrics import jsd as jsd
from jaxattn.core.metrics import kl as kl
from jaxattn.core.metrics import tvd as tvd
from jaxattn.core.protocol import AttentionModel as AttentionModel
from jaxattn.core.protocol import BaseModel as BaseModel
from jaxattn.core.protocol import Batch as Batch
from jaxattn.core.protocol import Encoded as Encoded
from jaxattn.core.protocol import FeaturizedModel as FeaturizedModel
from jaxattn.core.protocol import HeadMaps as HeadMaps
from jaxattn.core.protocol import Inputs as Inputs
from jaxattn.core.protocol import capabilities as capabilities
from jaxattn.core.protocol import forward as forward
from jaxattn.core.version import __version__ as __version__
from jaxattn.data.config import DataConfig as DataConfig
from jaxattn.data.prepare import Prepared as Prepared
from jaxattn.explain.agreement import agreement_measures as agreement_measures
from jaxattn.explain.agreement import kendall_tau as kendall_tau
from jaxattn.explain.importance import gradient_importance as gradient_importance
from jaxattn.explain.importance import gradient_importances as gradient_importances
from jaxattn.explain.importance import integrated_gradients as integrated_gradients
from jaxattn.explain.importance import leave_one_out as leave_one_out
from jaxattn.explain.interventions import permute_attention as permute_attention
from jaxattn.explain.interventions import (
    search_adversarial_attention as search_adversarial_attention,
)
from jaxattn.models.attention import masked_softmax as masked_softmax
from jaxattn.models.config import ModelConfig as ModelConfig
from jaxattn.runs.fit import prepare_data as prepare_data
from jaxattn.runs.fit import train_model as train
from jaxattn.runs.run import load_run as load_run
from jaxattn.runs.run import train_run as train_run
from jaxattn.studies.jain_wallace.analyze import analyze as analyze
from jaxattn.studies.jain_wallace.analyze import analyze_run as analyze_run
from jaxattn.studies.jain_wallace.stages import list_stages as list_stages
from jaxattn.studies.registry import random_key as stage_random_key
from jaxattn.studies.registry import register_stage as register_stage
from jaxattn.studies.stage import Stage as Stage
from jaxattn.studies.wiegreffe_pinter.suite import wiegreffe_pinter as wiegreffe_pinter
from jaxattn.training.config import TrainConfig as TrainConfig

__all__ = [
    "AttentionModel",
    "BaseModel",
    "Batch",
    "Config",
    "ConfigError",
    "DataConfig",
    "Encoded",
    "FeaturizedModel",
    "HeadMaps",
    "Inputs",
    "JaxattnError",
    "ModelConfig",
    "Prepared",
    "Stage",
    "TrainConfig",
    "agreement_measures",
    "analyze",
    "analyze_run",
    "capabilities",
    "check_model",
    "check_model_outputs",
    "forward",
    "gradient_importance",
    "gradient_importances",
    "integrated_gradients",
    "jsd",
    "kendall_tau",
    "kl",
    "leave_one_out",
    "list_stages",
    "load_config",
    "load_run",
    "masked_softmax",
    "permute_attention",
    "prepare_data",
    "register_stage",
    "search_adversarial_attention",
    "stage_random_key",
    "train",
    "train_run",
    "tvd",
    "wiegreffe_pinter",
]
