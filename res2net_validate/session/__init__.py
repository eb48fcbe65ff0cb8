"""One validation run, split by job, each part built from the ones before it:

    inputs        where weights, data, their split, preprocessed images and thresholds come from
    capabilities  what may run here (score, calibrate, each precision), and why not
    identity      fingerprints of the model and data; the baseline compared against
    pipeline      graphs, backend runners, scores and the FP32 reference
    preflight     the start-up checks over all of them

Everything is lazy and memoised by argument, so selecting only ``-m performance`` never scores
images, and selecting only ``--precision fp16`` never calibrates INT8.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import cached_property
from typing import Callable, ContextManager

from ..cache import ArtifactCache
from ..settings import Settings
from .capabilities import Capabilities
from .identity import RunIdentity
from .inputs import Inputs, Source
from .pipeline import Pipeline, Scored
from .preflight import Preflight, check_output_file
from .progress import Progress

__all__ = ["ValidationSession", "Source", "Scored", "check_output_file"]


class ValidationSession:
    def __init__(self, settings: Settings, progress: bool = True,
                 live_output: Callable[[], ContextManager] = nullcontext, backend=None):
        self.settings = settings
        self.cache = ArtifactCache(settings.checkpoints_dir, lock_timeout=settings.values.get("lock_timeout"))
        self.progress = Progress(progress, live_output)
        self.inputs = Inputs(settings, self.cache, self.progress)
        self.identity = RunIdentity(settings, self.inputs)
        if backend is not None:  # a test's (or an embedding tool's) backend instead of --backend's
            self.backend = backend
        self.verdicts_in_run = 1  # accuracy verdicts collected for the run (the plugin counts them)

    @cached_property
    def backend(self):
        """--backend's backend, resolved on first use (``auto`` probes what this machine has)."""
        from ..backends import get_backend

        return get_backend(self.settings.backend, cache=self.cache)

    @cached_property
    def capabilities(self) -> Capabilities:
        return Capabilities(self.settings, self.inputs, self.backend)

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.settings, self.cache, self.backend, self.inputs, self.capabilities, self.progress)

    @cached_property
    def preflight(self) -> Preflight:
        return Preflight(self.settings, self.inputs, self.capabilities, self.identity)

    def notes(self, artifacts=None) -> list[str]:
        """What the report says about how this run got its inputs and graphs."""
        notes = self.inputs.notes()
        if "pipeline" in self.__dict__:
            notes += self.pipeline.notes()
        if artifacts is not None:
            for graph in artifacts.graphs.values():
                notes.extend(graph.notes())
        return notes

    def close(self) -> None:
        if "pipeline" in self.__dict__:
            self.pipeline.close()
