"""The thresholds YAML: what "passing" means, loaded through its declared schema (``schemas.ThresholdsSchema``).

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

from .errors import ValidateError
from .schemas import ThresholdsSchema, load_yaml, validate



def _default_thresholds_dir() -> Path:
    """Where the default thresholds files (embedded.yaml, res2net50.yaml) are: in a checkout (an editable
    install included) the repository's top-level thresholds/, the folder users edit; in an installed
    wheel the package's _thresholds/, the same files (pyproject.toml maps one onto the other)."""
    package = Path(__file__).resolve().parent
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "thresholds").is_dir():
        return checkout / "thresholds"
    return package / "_thresholds"


PACKAGED = _default_thresholds_dir()


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
    """The thresholds file, checked against ``schemas.ThresholdsSchema`` before anything uses it."""
    path = Path(path)
    where = f"thresholds file {path}"
    if not path.exists():
        raise ValidateError(f"{where}: not found. Pass --thresholds FILE or create it "
                            f"(see {PACKAGED / 'res2net50.yaml'}).")
    return thresholds_from(validate(ThresholdsSchema, load_yaml(path, where), where), path)


def thresholds_from(document, path: Path) -> Thresholds:
    """The Thresholds of a validated ``ThresholdsSchema`` document (a card's is one too)."""
    return Thresholds(path, document.model, document.source, document.batch_size, targets(document.accuracy),
                      {device: {p: float(fps) for p, fps in floors.items()}
                       for device, floors in document.performance.items()},
                      targets(document.max_drop_vs_fp32))


def targets(section: dict) -> dict[str, AccuracyTarget]:
    """{precision: AccuracyTarget} of a validated {precision: {top1, top5}} mapping."""
    return {precision: AccuracyTarget(t.top1, t.top5) for precision, t in section.items()}
