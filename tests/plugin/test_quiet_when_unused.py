"""Installed, the plugin loads in every pytest session of the environment.  Where none of its tests is
collected and none of its options is set, it prints nothing and imports nothing heavy (measured against
``-p no:res2net_validate``; benchmarks/plugin_overhead.py measures the CPU it costs)."""

from __future__ import annotations

import json

import pytest

from res2net_validate.settings import OPTIONS

# Writes the modules the test process has loaded (a fresh interpreter: a subprocess run is the point here).
ONE_TEST = '''
import json, os, sys

def test_one():
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
'''
HEAVY = ("numpy", "pydantic", "yaml", "filelock", "onnx", "onnxruntime", "torch", "PIL", "scipy")
PYTEST_LINES = ("platform", "rootdir", "plugins", "cachedir")


@pytest.fixture
def run_unrelated(pytester, monkeypatch, tmp_path):
    for option in OPTIONS:
        if option.env:
            monkeypatch.delenv(option.env, raising=False)
    pytester.makepyfile(test_one=ONE_TEST)

    def run(*args):
        out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
        monkeypatch.setenv("MODULES_OUT", str(out))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        assert result.ret == 0, result.stdout.str()
        return result, set(json.loads(out.read_text()))

    return run


def _header(result) -> list[str]:
    lines = result.outlines[:next(i for i, line in enumerate(result.outlines) if line.startswith("collected"))]
    return [line for line in lines if not line.startswith(PYTEST_LINES)]


def test_an_unrelated_project_sees_no_header_line_and_no_heavy_import(run_unrelated):
    with_plugin, loaded = run_unrelated()
    without, loaded_without = run_unrelated("-p", "no:res2net_validate")
    # (pytest's own "plugins:" line names every installed plugin, ours included)
    assert not [line for line in with_plugin.outlines if "res2net" in line.lower() and not line.startswith("plugins")]
    assert _header(with_plugin) == _header(without)
    added = loaded - loaded_without
    heavy = sorted(m for m in added if m.split(".")[0] in HEAVY)
    assert not heavy, f"the unused plugin imported {heavy}"
    ours = sorted(m for m in added if m.startswith("res2net_validate"))
    assert not any(m.startswith(("res2net_validate.session", "res2net_validate.schemas")) for m in ours), ours


def test_one_option_set_makes_the_plugin_speak(run_unrelated, monkeypatch):
    # the same project with one of our options (here from the environment): the header says what it resolved
    monkeypatch.setenv("RES2NET_BATCH_SIZE", "4")
    result, _ = run_unrelated()
    assert any(line.startswith("res2net_validate ") for line in _header(result)), result.stdout.str()
    result.stdout.fnmatch_lines(["*batch-size=4 (env RES2NET_BATCH_SIZE)*"])
