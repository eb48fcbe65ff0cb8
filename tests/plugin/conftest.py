"""Self-tests run the real suite through ``pytester`` in a scratch project laid out like ours."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from res2net_validate.settings import OPTIONS

REPO = Path(__file__).resolve().parents[2]
ACCEPTANCE = REPO / "res2net_validate" / "acceptance"  # the user-facing tests
THRESHOLDS = REPO / "thresholds"  # the default thresholds files (shipped inside the package too)
USER_TESTS = ("test_accuracy.py", "test_precision.py", "test_performance.py")


@pytest.fixture
def suite(pytester, monkeypatch, shared_cache):
    """A scratch project with our user-facing tests, thresholds and pytest.ini; returns ``run(*args)``."""
    for option in OPTIONS:
        if option.env:
            monkeypatch.delenv(option.env, raising=False)
    tests_dir = pytester.path / "tests"
    tests_dir.mkdir()
    for name in USER_TESTS:
        shutil.copy(ACCEPTANCE / name, tests_dir / name)
    shutil.copytree(THRESHOLDS, pytester.path / "thresholds")
    # Our pytest.ini, its testpaths (same files, same order) pointed at the scratch project's copies.
    ini = (REPO / "pytest.ini").read_text()
    (pytester.path / "pytest.ini").write_text(ini.replace("res2net_validate/acceptance/", "tests/"))

    class Suite:
        path = pytester.path
        cache = shared_cache

        @staticmethod
        def run(*args, cache: bool = True):
            extra = (f"--checkpoints-dir={shared_cache}",) if cache else ()
            # A subprocess per run: each run is a fresh process, as for a user, and a crash in a
            # native library fails one test instead of the whole self-test session.
            return pytester.runpytest_subprocess(*extra, "-p", "no:cacheprovider", *args, timeout=1200)

    return Suite


ZERO_THRESHOLDS = "accuracy:\n  fp32: {top1: 0, top5: 0}\n  fp16: {top1: 0, top5: 0}\n  int8: {top1: 0, top5: 0}\n"
