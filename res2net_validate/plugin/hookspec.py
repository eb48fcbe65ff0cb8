"""Hooks a conftest.py can implement to adapt the pipeline to its own model."""

import pytest


@pytest.hookspec(firstresult=True)
def pytest_res2net_validate_preprocess(config, preprocess):
    """Return a replacement for the ``preprocess.Preprocess`` used to score and calibrate
    (e.g. ``dataclasses.replace(preprocess, channel_order="BGR")``), or None to keep it.

    Every field of ``Preprocess`` is part of the cache key of the preprocessed images.
    """
