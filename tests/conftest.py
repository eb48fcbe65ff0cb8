"""Shared by the unit and plugin self-tests."""

# The plugin imports its pipeline only once used, so the self-test process could first import a native
# library inside a test that uses ``pytester``; pytester drops the modules a test imported when it ends,
# and numpy's or torch's native core cannot load twice in one process.  Loaded here, before any pytester
# snapshot is taken, they stay.
import numpy  # noqa: F401
import onnxruntime  # noqa: F401
import torch  # noqa: F401
