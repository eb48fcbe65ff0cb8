"""Each selected precision really runs in that precision: what the backend executes is inspected
(ONNX Runtime's optimized model, the torch module, TensorRT's engine inspector), not the file."""

import pytest


@pytest.mark.accuracy
@pytest.mark.performance
def test_precision_is_proven(precision, res2net_runner, res2net_check):
    res2net_check.precision(res2net_runner)
