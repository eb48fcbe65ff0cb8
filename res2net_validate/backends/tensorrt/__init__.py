"""TensorRT backend (see backend.py)."""

from .backend import *  # noqa: F401,F403  (the move keeps every public name importable)
from .backend import HEADER_NAME, LAYERS_NAME, PLAN_NAME, TensorRTBackend  # noqa: F401
