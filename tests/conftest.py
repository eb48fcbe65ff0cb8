"""Shared by the unit and plugin self-tests: one artifact cache for the pytester runs and one random-weights
Res2Net50, exported once per self-test."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

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
    """One artifact cache for every pytester run: the embedded default is generated once per session, and
    once for all pytest-xdist workers (the cache's own locks let one worker build while the others wait, as
    they do for users' workers).  RES2NET_SELFTEST_CACHE=DIR reuses a developer's warm cache across sessions
    (CI leaves it unset)."""
    import os

    warm = os.environ.get("RES2NET_SELFTEST_CACHE")
    if warm:
        return Path(warm)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker's basetemp is a folder of the run's one temp root
        shared = tmp_path_factory.getbasetemp().parent / "res2net-cache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("res2net-cache")


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A seeded, untrained res2net50_14w_8s checkpoint in the original (bare state_dict) format."""
    from res2net_validate.graphs.checkpoint import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "res2net50_14w_8s-random.pth"
    torch.save(create_model().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def random_weights_export(random_weights, tmp_path_factory) -> SimpleNamespace:
    """``res2net-validate export`` of ``random_weights``, called twice on a cache of its own that starts cold
    (never RES2NET_SELFTEST_CACHE): ``calls`` holds each call's exit code and printed lines, which test_cli
    checks (built, then cached); the plugin runs on ``random_weights`` then pass ``cache`` and reuse its FP32
    and FP16 graphs instead of exporting the same model again."""
    from res2net_validate.cli import main

    cache = tmp_path_factory.mktemp("random-weights-cache")
    calls = []
    for _ in range(2):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["export", f"--weights={random_weights}", f"--cache-dir={cache}"])
        calls.append((code, printed.getvalue().splitlines()))
    return SimpleNamespace(cache=cache, calls=calls)
