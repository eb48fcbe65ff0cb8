"""Typed facts about a run's graphs, each rendering the note line the report shows.

``GraphCheck`` is read from a cache entry's info.json (written by export.py, format unchanged,
so entries written by earlier versions read the same); ``Int8Build`` is what the INT8 build
used and left in float.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphCheck:
    """A graph's outputs against its reference's on the same check input, when it was built."""

    reference: str  # e.g. "torch fp32", "onnx fp32"
    max_abs_diff: float

    @classmethod
    def from_info(cls, info: dict) -> "GraphCheck | None":
        """From an entry's info.json; None where it records no comparison."""
        if "max_abs_diff" not in info:
            return None
        return cls(str(info["reference"]), float(info["max_abs_diff"]))

    def note(self, precision: str) -> str:
        return f"{precision} graph vs {self.reference}: max |diff| {self.max_abs_diff:.2e}"


@dataclass(frozen=True)
class Int8Build:
    flavour: str  # the Q/DQ flavour: "onnxruntime" or "tensorrt"
    calibration: str  # which images, e.g. "64 held-out val images"
    method: str  # calibrate.CalibrationSettings.method
    percentile: float  # used by the "percentile" method only
    unquantized_weights: tuple[str, ...] = ()  # Conv/Gemm weights left in float (should be none)

    def note(self) -> str:
        names = self.unquantized_weights
        coverage = (f"WARNING: {len(names)} Conv/Gemm weights left in float: {', '.join(names[:5])}"
                    if names else "every Conv/Gemm weight quantized")
        method = f"percentile {self.percentile:g}" if self.method == "percentile" else self.method
        return f"int8 Q/DQ graph, {self.flavour} flavour, {method} calibration on {self.calibration}; {coverage}"
