"""Versions of the libraries whose numerics shape an artifact: the ``versions`` part of cache keys.

One home for the lookup; each caller names its own libraries, so every key keeps the keys, order
and values it always had (a changed dict would turn a user's warm cache cold).
"""

from __future__ import annotations

import importlib
from importlib import metadata


def package_versions(*distributions: str, skip_missing: bool = False) -> dict[str, str]:
    """``{distribution: installed version}`` from package metadata, in the order given.

    Nothing is imported, so a cache hit stays cheap (no torch import to learn torch's version).
    A distribution that is not installed raises ``PackageNotFoundError``, or is left out with
    ``skip_missing`` (for optional runtimes such as ``onnxruntime-gpu`` or ``tensorrt``).
    """
    versions = {}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if not skip_missing:
                raise
    return versions


def module_versions(*modules: str) -> dict[str, str]:
    """``{module: module.__version__}``, in the order given: the version of the code that runs,
    whichever wheel provides it (``onnxruntime`` comes from ``onnxruntime`` or ``onnxruntime-gpu``)."""
    return {name: importlib.import_module(name).__version__ for name in modules}
