"""Streaming INT8 calibration: activation ranges from one pass over the calibration images.

ONNX Runtime's own calibrator keeps every intermediate output of every batch until the end
(about 11 GB for 64 images of Res2Net50), and its Entropy method with the default bins
returns the MinMax ranges.  Here a copy of the FP32 graph exposes every activation that the
quantizer will see as an extra output; each run's outputs are folded into running
statistics and dropped, so memory depends on the run size (``batch_size`` images), never on
the number of calibration images.

Statistics per tensor: min/max, and for percentile/entropy a histogram of ``|x|`` (the
quantity a symmetric signed quantizer cuts).  The histogram keeps one pass: its bin width is
set by the first run (``num_bins`` bins up to that run's max-abs); when a later value falls
beyond the last bin, bins are appended, and pairs of bins are merged whenever there are more
than ``2 * num_bins``, so the finished histogram has between ``num_bins`` and
``2 * num_bins`` bins up to the global max-abs.

Methods:

* ``minmax``: the observed (min, max).
* ``percentile``: clip ``|x|`` at the given percentile of its histogram.
* ``entropy``: TensorRT's legacy entropy calibrator: for every candidate threshold bin from
  ``num_quantized_bins`` up, the reference P is the histogram cut there (outliers folded into
  the last bin), Q is P requantised to ``num_quantized_bins`` levels and expanded back over
  P's non-empty bins; the threshold with the smallest KL(P||Q) wins.  As in NVIDIA's
  calibration tool, the zero bin is levelled with its neighbour first (see ``clip_threshold``).

A clipping threshold ``T`` becomes the range ``(max(min, -T), min(max, T))``, so the same
ranges serve a symmetric signed quantizer (TensorRT) and an asymmetric unsigned one (ORT CPU).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..constants import CALIBRATION_METHODS
from ..errors import ValidateError
from ..ort_sessions import exposing, inference_session, quiet_session_options

RANGES_FORMAT = 1  # bump when the statistics or the JSON layout change
INPUT_NAME = "input"
_TINY = 1e-30  # below this a max-abs counts as zero (a bin width from it would overflow 1/width)


@dataclass(frozen=True)
class CalibrationSettings:
    method: str = "entropy"  # "minmax" | "percentile" | "entropy"
    percentile: float = 99.999
    num_bins: int = 2048  # histogram resolution (TensorRT style)
    num_quantized_bins: int = 128  # KL search target levels
    # Images per ONNX Runtime run while calibrating.  Every activation of a run is held at
    # once (~50 MB per 224x224 image for Res2Net50), so this bounds peak memory.
    batch_size: int = 8

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise ValidateError(f"--method {self.method!r}: unknown calibration method. Use one of {', '.join(CALIBRATION_METHODS)}.")
        if not (0.0 < self.percentile <= 100.0) or math.isnan(self.percentile):
            raise ValidateError(f"--percentile {self.percentile}: must be in (0, 100], e.g. 99.999.")
        if self.num_quantized_bins < 2 or self.num_bins < self.num_quantized_bins:
            raise ValidateError(
                f"calibration bins: num_bins={self.num_bins}, num_quantized_bins={self.num_quantized_bins}; "
                "need num_bins >= num_quantized_bins >= 2 (TensorRT uses 2048 and 128)."
            )
        if self.batch_size < 1:
            raise ValidateError(f"calibration batch_size={self.batch_size}: must be at least 1.")

    def key_parts(self) -> dict:
        parts = asdict(self)
        if self.method == "minmax":  # histogram settings do not change a min/max result
            for name in ("percentile", "num_bins", "num_quantized_bins"):
                parts.pop(name)
        elif self.method == "percentile":
            parts.pop("num_quantized_bins")
        else:
            parts.pop("percentile")
        parts["format"] = RANGES_FORMAT
        return parts


@dataclass
class TensorRanges:
    """Quantization range per activation tensor (graph input included), JSON-cacheable."""

    method: str
    settings: dict
    num_images: int
    ranges: dict[str, tuple[float, float]]  # what the quantizer uses: (lowest, highest)
    observed: dict[str, tuple[float, float]] = field(default_factory=dict)  # raw (min, max) seen
    seconds: dict[str, float] = field(default_factory=dict)  # {"pass": images -> statistics, "ranges": search}

    def save(self, path: str | Path) -> None:
        record = {
            "format": RANGES_FORMAT,
            "method": self.method,
            "settings": self.settings,
            "num_images": self.num_images,
            "seconds": self.seconds,
            "tensors": {
                name: {"lowest": lo, "highest": hi, "min": self.observed.get(name, (lo, hi))[0],
                       "max": self.observed.get(name, (lo, hi))[1]}
                for name, (lo, hi) in self.ranges.items()
            },
        }
        Path(path).write_text(json.dumps(record, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "TensorRanges":
        path = Path(path)
        try:
            record = json.loads(path.read_text())
            if record.get("format") != RANGES_FORMAT:
                raise ValueError(f"format {record.get('format')!r}, expected {RANGES_FORMAT}")
            tensors = record["tensors"]
            ranges = {name: (float(t["lowest"]), float(t["highest"])) for name, t in tensors.items()}
            observed = {name: (float(t["min"]), float(t["max"])) for name, t in tensors.items()}
            return cls(record["method"], record["settings"], int(record["num_images"]), ranges, observed,
                       record.get("seconds", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValidateError(
                f"calibration ranges {path}: unreadable ({type(exc).__name__}: {exc}). "
                "Delete the file (or the cache directory) to calibrate again."
            ) from None

    def to_tensors_data(self):
        """The ranges in the form onnxruntime's quantizers take (``tensors_range``)."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[self.method]
        return TensorsData(
            method,
            {name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in self.ranges.items()},
        )


# ----------------------------------------------------------------------------------------
# Per-tensor running statistics


class _TensorStats:
    """min/max and (optionally) a growing histogram of |x| with a fixed number of bins."""

    __slots__ = ("min", "max", "hist", "bin_width", "max_bins", "num_bins")

    def __init__(self, num_bins: int, with_histogram: bool):
        self.min = math.inf
        self.max = -math.inf
        self.num_bins = num_bins
        self.max_bins = 2 * num_bins
        self.hist = np.zeros(1, dtype=np.int64) if with_histogram else None
        self.bin_width = 0.0  # set by the first run with a non-zero value

    def update(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            self.min = self.max = math.nan  # sticky: reported when the ranges are computed
            self.hist = None
            return
        if math.isnan(self.min):
            return
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        if self.hist is None:
            return
        amax = max(-lo, hi)
        if amax < _TINY:  # all zeros (or denormals): bin 0, whatever the width turns out to be
            self.hist[0] += x.size
            return
        if self.bin_width == 0.0:
            self.bin_width = amax / self.num_bins
        needed = math.ceil(amax / self.bin_width)
        while needed > self.max_bins:  # merge pairs: the bin edges stay aligned, nothing is re-spread
            if len(self.hist) % 2:
                self.hist = np.append(self.hist, 0)
            self.hist = self.hist.reshape(-1, 2).sum(axis=1)
            self.bin_width *= 2.0
            needed = math.ceil(amax / self.bin_width)
        if needed > len(self.hist):
            self.hist = np.concatenate([self.hist, np.zeros(needed - len(self.hist), dtype=np.int64)])
        scaled = np.abs(x, dtype=np.float32).ravel()
        scaled *= np.float32(1.0 / self.bin_width)
        index = scaled.astype(np.intp)  # floor (values are >= 0); intp is what bincount counts without a copy
        del scaled
        np.minimum(index, len(self.hist) - 1, out=index)  # max-abs itself lands on the last bin's edge
        self.hist += np.bincount(index, minlength=len(self.hist))

    def clip_threshold(self, settings: CalibrationSettings) -> float:
        """max-abs threshold chosen by the method (inf for minmax: no clipping)."""
        if settings.method == "minmax" or self.bin_width == 0.0:
            return math.inf
        hist = np.trim_zeros(self.hist, "b")
        if settings.method == "percentile":
            cdf = np.cumsum(hist) / hist.sum()
            last_bin = int(np.searchsorted(cdf, settings.percentile / 100.0))
            return min(last_bin + 1, len(hist)) * self.bin_width
        # Bin 0 holds every exact zero (half of a ReLU output): left as is, that spike dominates
        # KL and drags the threshold down until the layer is clipped to death.  NVIDIA's
        # TensorRT calibration tool levels it with its neighbour; so do we.
        hist = hist.copy()
        if len(hist) > 1:
            hist[0] = hist[1]
        return entropy_threshold_bins(hist, settings.num_quantized_bins) * self.bin_width

    def range(self, settings: CalibrationSettings) -> tuple[float, float]:
        threshold = self.clip_threshold(settings)
        return max(self.min, -threshold), min(self.max, threshold)


def entropy_threshold_bins(hist: np.ndarray, num_quantized_bins: int) -> int:
    """Number of leading bins to keep that minimises KL(P||Q), TensorRT's legacy search.

    For a candidate ``i``: P = hist[:i] with the outliers hist[i:] added to P[i-1]; Q merges
    hist[:i] into ``num_quantized_bins`` levels of ``i // num_quantized_bins`` bins (the last
    level takes the remainder) and spreads each level's count evenly over its non-empty bins.
    All candidates are evaluated at once from prefix sums:
    KL = (sum P log P - sum P log Q) / N + log(sum Q / N), N = total count.
    """
    hist = np.asarray(hist, dtype=np.float64)
    num_bins = len(hist)
    levels = num_quantized_bins
    if num_bins <= levels:
        return num_bins
    total = hist.sum()
    counts = np.concatenate([[0.0], np.cumsum(hist)])
    nonempty = np.concatenate([[0], np.cumsum(hist > 0)])
    safe = np.where(hist > 0, hist, 1.0)
    p_log_p = np.concatenate([[0.0], np.cumsum(hist * np.log(safe))])

    cut = np.arange(levels, num_bins + 1)  # keep bins [0, cut)
    width = cut // levels
    starts = np.arange(levels)[None, :] * width[:, None]
    ends = starts + width[:, None]
    ends[:, -1] = cut
    level_count = counts[ends] - counts[starts]
    level_nonempty = nonempty[ends] - nonempty[starts]
    level_log_q = np.log(np.where(level_count > 0, level_count, 1.0) / np.maximum(level_nonempty, 1))

    outliers = total - counts[cut]
    last = hist[cut - 1]
    p_last = last + outliers
    sum_p_log_p = p_log_p[cut - 1] + p_last * np.log(np.where(p_last > 0, p_last, 1.0))
    sum_p_log_q = (level_count * level_log_q).sum(axis=1) + outliers * level_log_q[:, -1]
    with np.errstate(divide="ignore"):  # no mass below the cut: log(0), and KL is inf anyway
        kl = (sum_p_log_p - sum_p_log_q) / total + np.log(counts[cut] / total)
    kl[(last == 0) & (outliers > 0)] = np.inf  # Q is zero where P is not
    best = len(kl) - 1 - int(np.argmin(kl[::-1]))  # on a tie, the widest range
    return int(cut[best])


# ----------------------------------------------------------------------------------------
# The pass over the images


def calibration_tensors(model) -> list[str]:
    """Float activations the ORT quantizer may quantize: inputs and outputs of every node of an
    op type it knows (Conv, Relu, Add, pools, Concat, Split, Gemm, ...), graph input included,
    in graph order."""
    import onnx
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    if not any(vi.name for vi in model.graph.value_info):
        model = onnx.shape_inference.infer_shapes(model)
    quantizable_ops = set(QDQRegistry) | set(QLinearOpsRegistry)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    initializers = {init.name for init in model.graph.initializer}
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    names: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type not in quantizable_ops:
            continue
        for name in list(node.input) + list(node.output):
            if name and name not in initializers and types.get(name) in float_types:
                names[name] = None
    return list(names)


def relu_fed_tensors(model) -> dict[str, str]:
    """Tensors whose only reader is a Relu, mapped to that Relu's output.

    onnxruntime's quantizer never uses their own range: it gives a Relu's input the range of
    the Relu's output (``adjust_tensor_ranges``; with asymmetric activations the Relu is then
    folded away), and the TensorRT flavour does not quantize Conv/Add outputs at all.  So they
    are not measured; they borrow the Relu output's range.  That spares about a third of
    Res2Net50's activations (every conv output), and lets ONNX Runtime fuse Conv+Relu.
    """
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    graph_outputs = {o.name for o in model.graph.output}
    return {
        node.input[0]: node.output[0]
        for node in model.graph.node
        if node.op_type == "Relu" and readers.get(node.input[0]) == 1
        and node.input[0] not in graph_outputs and node.input[0] != INPUT_NAME
    }


def _augmented_session(model, names: list[str]):
    """A session on a copy of ``model`` returning every tensor in ``names`` as an output."""
    import onnxruntime as ort

    options = quiet_session_options()
    # All optimisations: the NCHWc convolutions stay (an exposed output costs one reorder copy);
    # measured 2-3x faster than "extended" on Res2Net50.  Exposed tensors are never fused away.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The arena would keep the largest run's buffers for the session's life; without it the
    # memory of each run goes back as soon as its outputs are dropped.
    options.enable_cpu_mem_arena = False
    return inference_session(exposing(model, names), options)


def _runs(batches: Iterable[np.ndarray], batch_size: int, image_shape: tuple) -> Iterator[np.ndarray]:
    """Re-cut the caller's batches into runs of exactly ``batch_size`` images (the last may be
    shorter), so the statistics do not depend on how the caller batched the images."""
    pending: list[np.ndarray] = []
    held = 0
    for batch in batches:
        batch = np.asarray(batch)
        if batch.ndim != 4 or (image_shape and tuple(batch.shape[1:]) != image_shape) or batch.dtype.kind != "f":
            want = "x".join(map(str, image_shape)) if image_shape else "C x H x W"
            raise ValidateError(
                f"calibration batch of shape {batch.shape} and dtype {batch.dtype}: expected float32 N x {want} "
                "normalised images. Check the calibration source and preprocessing."
            )
        if len(batch) == 0:
            continue
        pending.append(np.ascontiguousarray(batch, dtype=np.float32))
        held += len(batch)
        while held >= batch_size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:batch_size]
            rest = joined[batch_size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield np.concatenate(pending)


def collect_ranges(
    fp32_graph: Path,
    batches: Iterable[np.ndarray],
    settings: CalibrationSettings,
    progress: bool = True,
    total_batches: int | None = None,
) -> TensorRanges:
    """One pass over float32 normalised NCHW ``batches``; memory is bounded by
    ``settings.batch_size``, independent of the number of images."""
    import onnx
    from tqdm import tqdm

    fp32_graph = Path(fp32_graph)
    model = onnx.load(str(fp32_graph))
    names = calibration_tensors(model)
    borrowed = relu_fed_tensors(model)
    names = [name for name in names if name not in borrowed]
    input_dims = next(i for i in model.graph.input if i.name == INPUT_NAME).type.tensor_type.shape.dim
    image_shape = tuple(d.dim_value for d in input_dims[1:]) if all(d.dim_value for d in input_dims[1:]) else ()
    session = _augmented_session(model, names)
    del model
    outputs = [name for name in names if name != INPUT_NAME]
    with_histogram = settings.method != "minmax"
    stats = {name: _TensorStats(settings.num_bins, with_histogram) for name in names}

    images = 0
    started = time.perf_counter()
    bar = tqdm(total=total_batches, desc=f"calibrating ({settings.method})", unit="batch", disable=not progress)
    try:
        seen_batches = 0

        def counted(it):
            nonlocal seen_batches
            for b in it:
                seen_batches += 1
                bar.update(1)
                yield b

        for run in _runs(counted(batches), settings.batch_size, image_shape):
            if INPUT_NAME in stats:
                stats[INPUT_NAME].update(run)
            for name, value in zip(outputs, session.run(outputs, {INPUT_NAME: run})):
                stats[name].update(value)
            images += len(run)
            bar.set_postfix(images=images)
    finally:
        bar.close()
    if images == 0:
        raise ValidateError(
            "the calibration source yielded no images. Point the calibration option at a directory or list "
            "with readable images."
        )

    pass_seconds = time.perf_counter() - started
    ranges, observed, bad = {}, {}, []
    for name, s in stats.items():
        if not (math.isfinite(s.min) and math.isfinite(s.max)):
            bad.append(name)
            continue
        observed[name] = (s.min, s.max)
        ranges[name] = s.range(settings)
    for name, relu_output in borrowed.items():
        if relu_output in ranges:
            ranges[name] = ranges[relu_output]
            observed[name] = observed[relu_output]
    if bad:
        where = "the calibration images themselves" if INPUT_NAME in bad else f"{len(bad)} activations (e.g. {', '.join(bad[:3])})"
        raise ValidateError(
            f"calibration of {fp32_graph.name} saw NaN or inf in {where}. Check the calibration images and "
            "the FP32 weights (an FP32 run on the same images should give finite logits)."
        )
    seconds = {"pass": pass_seconds, "ranges": time.perf_counter() - started - pass_seconds}
    return TensorRanges(settings.method, settings.key_parts(), images, ranges, observed, seconds)
