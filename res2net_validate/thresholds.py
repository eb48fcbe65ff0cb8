"""The thresholds YAML: what "passing" means, loaded through a small strict schema.

```yaml
model: res2net50_14w_8s
source: where the numbers come from
batch_size: 32
accuracy:                 # percent floors for the population (all 50,000 images)
  fp16: {top1: 77.92, top5: 93.71}
max_drop_vs_fp32:         # optional: points a precision may lose against FP32 on the same images
  int8: {top1: 0.78, top5: 0.50}
performance:              # FPS floors at batch_size, per device (matched in the device name)
  MR-V100: {fp16: 921.37}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .constants import PRECISIONS
from .errors import ValidateError

PACKAGED = Path(__file__).resolve().parent / "acceptance" / "thresholds"  # package data: embedded.yaml, res2net50.yaml
_TOP_LEVEL = {"model", "source", "batch_size", "accuracy", "max_drop_vs_fp32", "performance"}


@dataclass(frozen=True)
class AccuracyTarget:
    top1: float
    top5: float


@dataclass(frozen=True)
class Thresholds:
    path: Path
    model: str
    source: str
    batch_size: int
    accuracy: dict[str, AccuracyTarget]
    performance: dict[str, dict[str, float]] = field(default_factory=dict)
    max_drop_vs_fp32: dict[str, AccuracyTarget] = field(default_factory=dict)  # allowances in points

    def drop_allowance(self, precision: str) -> AccuracyTarget | None:
        return self.max_drop_vs_fp32.get(precision)

    def accuracy_for(self, precision: str) -> AccuracyTarget | None:
        return self.accuracy.get(precision)

    def fps_floor(self, precision: str, device: str) -> tuple[str, float] | None:
        """(device key, floor) of the first entry whose key occurs in ``device``, if any."""
        for device_key, floors in self.performance.items():
            if device_key.lower() in device.lower() and precision in floors:
                return device_key, floors[precision]
        return None


def load_thresholds(path: str | Path) -> Thresholds:
    path = Path(path)
    where = f"thresholds file {path}"
    if not path.is_file():
        raise ValidateError(f"{where}: not found. Pass --thresholds FILE or create it "
                            "(see res2net_validate/acceptance/thresholds/res2net50.yaml).")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidateError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise ValidateError(f"{where}: expected a mapping with keys {', '.join(sorted(_TOP_LEVEL))}")
    unknown = set(doc) - _TOP_LEVEL
    if unknown:
        raise ValidateError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                            f"allowed: {', '.join(sorted(_TOP_LEVEL))}")
    accuracy_doc = doc.get("accuracy")
    if not isinstance(accuracy_doc, dict) or not accuracy_doc:
        raise ValidateError(f"{where}: 'accuracy' must map precisions ({', '.join(PRECISIONS)}) to {{top1, top5}}")
    accuracy = {}
    for precision, target in accuracy_doc.items():
        here = f"{where}: accuracy.{precision}"
        if precision not in PRECISIONS:
            raise ValidateError(f"{here}: unknown precision; use {', '.join(PRECISIONS)}")
        accuracy[precision] = _top1_top5(target, here, "percent")
    max_drop = _max_drop(doc.get("max_drop_vs_fp32"), where)
    performance_doc = doc.get("performance") or {}
    if not isinstance(performance_doc, dict):
        raise ValidateError(f"{where}: 'performance' must map device names to {{precision: fps}}")
    performance = {}
    for device, floors in performance_doc.items():
        here = f"{where}: performance.{device}"
        if not isinstance(floors, dict) or not floors:
            raise ValidateError(f"{here}: expected {{precision: fps}}, got {floors!r}")
        for precision, fps in floors.items():
            if precision not in PRECISIONS:
                raise ValidateError(f"{here}.{precision}: unknown precision; use {', '.join(PRECISIONS)}")
            if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps <= 0:
                raise ValidateError(f"{here}.{precision}: expected a positive FPS number, got {fps!r}")
        performance[str(device)] = {p: float(v) for p, v in floors.items()}
    batch_size = doc.get("batch_size", 32)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValidateError(f"{where}: batch_size must be a positive integer, got {batch_size!r}")
    return Thresholds(path, str(doc.get("model", "")), str(doc.get("source", "")), batch_size, accuracy, performance,
                      max_drop)


def _max_drop(section, where: str) -> dict[str, AccuracyTarget]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ValidateError(f"{where}: 'max_drop_vs_fp32' must map fp16/int8 to {{top1: <points>, top5: <points>}}")
    allowances = {}
    for precision, allowance in section.items():
        here = f"{where}: max_drop_vs_fp32.{precision}"
        if precision == "fp32":
            raise ValidateError(f"{here}: fp32 is the reference; allowances are for fp16 and int8")
        if precision not in PRECISIONS:
            raise ValidateError(f"{here}: unknown precision; use fp16 or int8")
        allowances[precision] = _top1_top5(allowance, here, "points")
    return allowances


def _top1_top5(value, here: str, unit: str) -> AccuracyTarget:
    if not isinstance(value, dict) or set(value) != {"top1", "top5"}:
        raise ValidateError(f"{here}: expected exactly {{top1: <{unit}>, top5: <{unit}>}}, got {value!r}")
    return AccuracyTarget(_percent(value["top1"], f"{here}.top1"), _percent(value["top5"], f"{here}.top5"))


def _percent(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValidateError(f"{where}: expected a percentage between 0 and 100, got {value!r}")
    return float(value)
