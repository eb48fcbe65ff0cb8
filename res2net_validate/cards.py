"""A model card as a YAML file: which model (timm or torchvision), its released checkpoint, how its images are
preprocessed, how INT8 is calibrated, and the card's results table as thresholds, plus the thresholds of the
embedded default for that model.  The packaged cards live in ``thresholds/``; ``--card`` takes their name or
a path.  The schema is ``schemas.CardSchema``; the README's "Cards" section documents it.

```yaml
card: resnet50                      # the name --card takes
label: ResNet50                     # in tables and reports
library: torchvision                # timm or torchvision
model: resnet50                     # timm.create_model name / torchvision.models builder
weights: ResNet50_Weights.IMAGENET1K_V1   # torchvision: whose published transform preprocesses
checkpoint: {file: resnet50-0676ba61.pth, parameters: 25557032}
preprocess: published               # or explicit {image_size, crop_pct, interpolation, mean, std}
calibration: {method: minmax, images: 32, seed: 42}
source: where the numbers come from
batch_size: 32
accuracy: {fp16: {top1: 76.158, top5: 92.872}}
max_drop_vs_fp32: {int8: {top1: 1.0, top5: 0.5}}
performance: {MR-V100: {fp16: 4077.58}}
embedded: {accuracy: {...}, max_drop_vs_fp32: {...}}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ValidateError
from .models import ModelSpec
from .schemas import CardSchema, load_yaml, validate
from .thresholds import PACKAGED, AccuracyTarget, Thresholds

DEFAULT_CARD = "res2net50"


@dataclass(frozen=True)
class Card:
    name: str
    label: str
    path: Path
    model: ModelSpec
    checkpoint_file: str
    parameters: int
    preprocess: dict | None  # None: the publisher's transform; else explicit Preprocess fields
    calibration_method: str
    calibration_images: int | None
    calibration_note: str
    thresholds: Thresholds  # the card's results table, for real weights and ImageNet
    embedded: Thresholds | None  # the embedded default's, derived from its healthy pipeline

    @property
    def model_key(self) -> str:
        return self.model.key

    def identity(self) -> dict:
        """What the results JSON and baselines record of the card."""
        return {"name": self.name, "label": self.label, "model": self.model_key}


def packaged_cards() -> list[str]:
    return sorted(path.stem for path in PACKAGED.glob("*.yaml") if is_card(path))


def card_path(name_or_path: str | Path) -> Path:
    """A packaged card's file by name, or the path given."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    if not PACKAGED.is_dir():
        raise ValidateError(f"no packaged cards at {PACKAGED}: the cards ship inside the res2net_validate package "
                            "(package data), and this installation lacks them. Reinstall it (pip install .), or pass "
                            "--card FILE.")
    path = PACKAGED / f"{text}.yaml"
    if not path.is_file() or not is_card(path):
        raise ValidateError(f"--card {text}: no such packaged card; choose one of {', '.join(packaged_cards())}, "
                            "or pass the path of a card YAML file (see the README's Cards section)")
    return path


def load_card(name_or_path: str | Path) -> Card:
    path = card_path(name_or_path)
    where = f"card {path}"
    if not path.is_file():
        raise ValidateError(f"{where}: not found. Pass a packaged card's name ({', '.join(packaged_cards())}) "
                            "or the path of a card YAML file.")
    document = validate(CardSchema, load_yaml(path, where), where)
    model = ModelSpec(document.library, document.model, document.weights)
    preprocess = None if document.preprocess == "published" else document.preprocess.model_dump()
    embedded = None
    if document.embedded is not None:
        embedded = Thresholds(path, model.key, f"embedded default of card {document.card} (generated images and a "
                              "stand-in checkpoint; not ImageNet)", document.batch_size,
                              _targets(document.embedded.accuracy), {}, _targets(document.embedded.max_drop_vs_fp32))
    thresholds = Thresholds(path, model.key, document.source, document.batch_size, _targets(document.accuracy),
                            {device: {p: float(fps) for p, fps in floors.items()}
                             for device, floors in document.performance.items()},
                            _targets(document.max_drop_vs_fp32))
    calibration = document.calibration
    return Card(document.card, document.label, path, model, document.checkpoint.file, document.checkpoint.parameters,
                preprocess, calibration.method, calibration.images, calibration.note, thresholds, embedded)


def _targets(section: dict) -> dict[str, AccuracyTarget]:
    return {precision: AccuracyTarget(t.top1, t.top5) for precision, t in section.items()}


def is_card(path: Path) -> bool:
    """A card file starts its mapping with ``card:`` (a plain thresholds file has none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("card:") for line in text.splitlines())
