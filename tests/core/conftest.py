"""The model defined outside jaxattn (``test_protocol.RunningMeanModel``), initialised once per
module, for the protocol's and the checks' tests."""

import jax
import pytest

from jaxattn.core.checks import check_model
from tests.helpers import toy_batch


@pytest.fixture(scope="module")
def setup():
    from tests.core.test_protocol import RunningMeanModel

    model = check_model(RunningMeanModel())
    batch = toy_batch(lengths=(5, 3, 7), vocab_size=30)
    params = model.init(jax.random.key(1), batch)
    return model, params, batch
