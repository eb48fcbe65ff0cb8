"""The one place that answers "can this run score, calibrate, run this precision here, and if not,
why".  Preflight turns a "no" into a usage error where skipping would hide it; fixtures into a skip."""

from __future__ import annotations

from ..backends.base import Availability
from ..errors import NotConfigured
from ..settings import Settings
from .inputs import Inputs

NO_CALIBRATION = "INT8 needs calibration images: pass --calib-dir DIR, or --dataset-dir DIR to carve them out of val"


class Capabilities:
    def __init__(self, settings: Settings, inputs: Inputs, backend):
        self.settings = settings
        self.inputs = inputs
        self.backend = backend  # backends.base.Backend

    def score(self) -> Availability:
        """Whether images can be scored: weights and a dataset (or the embedded default)."""
        source = self.inputs.configured
        reason = source.skip_reason or source.no_data_reason
        return Availability(reason is None, reason or "")

    def calibrate(self) -> Availability:
        """Whether INT8 has calibration images: carved out of val, or from --calib-dir (a --calib-list
        alone names val images, and without a dataset there is no val)."""
        source = self.inputs.configured
        if source.no_data_reason and self.settings.calib_dir is None:
            return Availability(False, NO_CALIBRATION)
        return Availability(True)

    def backend_runs(self, precision: str) -> Availability:
        usable = self.backend.supports(precision)
        if usable:
            return usable
        return Availability(False, f"backend {self.backend.name} cannot run {precision}: {usable.reason}")

    def run(self, precision: str) -> Availability:
        """Whether ``precision`` can be opened here: the backend runs it, and INT8 has its calibration images."""
        usable = self.backend_runs(precision)
        if usable and precision == "int8":
            return self.calibrate()
        return usable

    def wants_reference(self, precision: str) -> bool:
        """FP32 is scored beside ``precision`` when selected, or when a relative gate needs it."""
        if precision == "fp32":
            return False
        return "fp32" in self.settings.precision or self.inputs.thresholds().drop_allowance(precision) is not None

    def int8_flavour(self) -> str:
        """The INT8 Q/DQ flavour: --int8-flavour, or the one the backend declares ("auto")."""
        chosen = self.settings.int8_flavour
        return (self.backend.int8_flavour or "onnxruntime") if chosen == "auto" else chosen


def require(usable: Availability) -> None:
    """A "no" that is not the user's mistake: the test that needs it skips with the reason."""
    if not usable:
        raise NotConfigured(usable.reason)
