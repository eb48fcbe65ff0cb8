"""Shared by the unit and plugin self-tests: one artifact cache for the pytester runs and one random-weights
Res2Net50 checkpoint."""

from __future__ import annotations

from pathlib import Path

# The plugin imports its pipeline only once used, so the self-test process could first import a native
# library inside a test that uses ``pytester``; pytester drops the modules a test imported when it ends,
# and numpy's or torch's native core cannot load twice in one process.  Loaded here, before any pytester
# snapshot is taken, they stay.
import numpy  # noqa: F401
import onnxruntime  # noqa: F401
import pytest
import torch  # noqa: F401


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One artifact cache for every pytester run: the embedded default is generated once per session.
    RES2NET_SELFTEST_CACHE=DIR reuses a developer's warm cache across sessions (CI leaves it unset)."""
    import os

    warm = os.environ.get("RES2NET_SELFTEST_CACHE")
    return Path(warm) if warm else tmp_path_factory.mktemp("res2net-cache")


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A seeded, untrained res2net50_14w_8s checkpoint in the original (bare state_dict) format."""
    from res2net_validate.graphs.checkpoint import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "res2net50_14w_8s-random.pth"
    torch.save(create_model().state_dict(), path)
    return path
