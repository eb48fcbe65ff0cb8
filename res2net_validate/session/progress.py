"""How a run shows long work: progress bars on the controller only, written past pytest's capture."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable, ContextManager


class Progress:
    def __init__(self, enabled: bool = True, live_output: Callable[[], ContextManager] = nullcontext):
        self.enabled = enabled
        self._live_output = live_output if enabled else nullcontext
        self.started = time.perf_counter()

    def live(self) -> ContextManager:
        """Where a progress bar may reach the terminal (pytest captures output otherwise)."""
        return self._live_output()

    def seconds(self) -> float:
        return time.perf_counter() - self.started
