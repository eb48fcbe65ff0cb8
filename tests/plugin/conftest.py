"""Self-tests run the real suite through ``pytester`` in a scratch project laid out like ours."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
from pathlib import Path

import pytest

from res2net_validate.settings import OPTIONS

REPO = Path(__file__).resolve().parents[2]
ACCEPTANCE = REPO / "res2net_validate" / "acceptance"  # the user-facing tests
THRESHOLDS = REPO / "thresholds"  # the default thresholds files (shipped inside the package too)
USER_TESTS = ("test_accuracy.py", "test_precision.py", "test_performance.py")


# Modules an in-process run may import that must be imported only once per interpreter, beyond those
# tests/conftest.py loads for every test (numpy, onnxruntime, torch).  pytester forgets, after each test, every
# module imported during it, but an extension module cannot be imported twice; so these are imported once,
# before the first in-process run, and run_in_process names any other.  Who needs them: the verdicts (scipy),
# checkpoints (timm, which imports triton), the embedded default's images (PIL's fonts), reports (matplotlib),
# export, simplification and quantization (torch.onnx, onnx with ml_dtypes and protobuf's upb, onnxsim,
# onnxruntime.quantization) and hypothesis's plugin.  One is pure Python: the decode workers' pool pickles
# concurrent.futures.process._process_worker by name, which fails once a second import of that module has
# replaced the one whose ProcessPoolExecutor concurrent.futures keeps.
NATIVE_LIBRARIES = ("pydantic", "scipy.stats", "timm", "PIL.ImageFont", "hypothesis", "matplotlib.image",
                    "matplotlib.backends.backend_agg", "onnx", "onnxsim", "ml_dtypes", "onnxruntime.quantization",
                    "torch.onnx", "concurrent.futures.process")


@pytest.fixture(scope="session")
def native_libraries():
    """Session-scoped, so set up before any test's ``pytester`` takes its snapshot of ``sys.modules``."""
    import importlib

    for name in NATIVE_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional one (matplotlib, hypothesis): a run that needs it says so itself
            pass


def run_in_process(pytester, *args):
    """``pytester.runpytest_inprocess``, kept apart from this session where a subprocess would be: the run's
    temporary files go under ``pytester.path``, the variables it sets in ``os.environ`` are undone, and a run
    that imports a new native extension fails at once, naming it (for NATIVE_LIBRARIES), instead of crashing
    the self-test at its next import.  Use it through a fixture that requests ``native_libraries``."""
    environ = dict(os.environ)
    loaded = set(sys.modules)
    native = []

    class NewNativeExtensions:
        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(self):
            native.extend(name for name, module in list(sys.modules.items()) if name not in loaded
                          and "-packages" in str(getattr(module, "__file__", None))
                          and str(module.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)))

    try:
        result = pytester.runpytest_inprocess(f"--basetemp={pytester.path.parent / 'basetemp'}", *args,
                                              plugins=[NewNativeExtensions()])
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
    assert not native, f"an in-process run imported the native extensions {native}: add their packages to " \
                       "NATIVE_LIBRARIES in tests/plugin/conftest.py, or run it in a subprocess"
    return result


@pytest.fixture(autouse=True)
def not_an_xdist_worker(monkeypatch):
    """With ``make test ARGS="-n 2"``, a pytester run is still a user's plain session, not a worker:
    pytest-benchmark would otherwise read PYTEST_XDIST_WORKER and disable the FPS tests."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def suite(native_libraries, pytester, monkeypatch, shared_cache):
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
        def run(*args, cache: bool | Path = True, in_process: bool = True):
            """``cache``: True for the shared cache, a folder for that one, False for none (the run names its own).

            Runs go in-process: this process has already imported torch, onnxruntime and timm, which a
            subprocess pays about 5 s for, every run.  ``in_process=False`` where a real process matters:
            pytest-xdist workers, or what a fresh interpreter imports or prints."""
            folder = shared_cache if cache is True else cache
            extra = (f"--checkpoints-dir={folder}",) if folder else ()
            if in_process:
                return run_in_process(pytester, *extra, "-p", "no:cacheprovider", *args)
            # hypothesis's pytest plugin (a dev dependency of ours, not the suite's) imports all of hypothesis
            # at the end of every run: 0.8 s of CPU per subprocess that the runs never use.
            return pytester.runpytest_subprocess(*extra, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args,
                                                 timeout=1200)

    return Suite


ZERO_THRESHOLDS = "accuracy:\n  fp32: {top1: 0, top5: 0}\n  fp16: {top1: 0, top5: 0}\n  int8: {top1: 0, top5: 0}\n"
