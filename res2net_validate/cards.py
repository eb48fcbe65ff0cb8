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
embedded_params: {conv_identity: 4.0}   # optional: how this card's embedded default differs from the defaults
```
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field, model_validator

from .constants import CALIBRATION_METHODS
from .errors import ValidateError
from .models import ModelSpec
from .schemas import PositiveCount, Count, Text, ThresholdsSchema, _Strict, described, load_yaml, optional, validate
from .thresholds import PACKAGED, Thresholds, load_thresholds, targets, thresholds_from

DEFAULT_CARD = "res2net50"

# -- the card's declared format: a thresholds file plus what the card says about its model -------------


CardName = described(Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")],
                     "a lowercase name (letters, digits, '_', '-', '.')")


class CheckpointSpec(_Strict):
    EXPECTED: ClassVar[str] = "{file: <released checkpoint file name>, parameters: <count>}"
    file: Text
    parameters: PositiveCount


class ExplicitPreprocess(_Strict):
    EXPECTED: ClassVar[str] = "{image_size, crop_pct, interpolation, mean: [r, g, b], std: [r, g, b]}"
    image_size: PositiveCount
    crop_pct: described(Annotated[float, Field(gt=0, le=2)], "a crop fraction in (0, 2]")
    interpolation: described(Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"],
                             "nearest, bilinear, bicubic, lanczos, box or hamming")
    mean: described(Annotated[list[float], Field(min_length=3, max_length=3)], "three numbers (RGB)")
    std: described(Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=3, max_length=3)],
                   "three positive numbers (RGB)")


class CalibrationSpec(_Strict):
    EXPECTED: ClassVar[str] = "{method, images, seed, note}"
    method: described(Literal[CALIBRATION_METHODS], f"one of {', '.join(CALIBRATION_METHODS)}") = "entropy"
    images: optional(PositiveCount) = None
    seed: optional(Count) = None
    note: Text = ""


class EmbeddedThresholdsSchema(_Strict):
    EXPECTED: ClassVar[str] = "a mapping of accuracy, max_drop_vs_fp32 (the embedded default's thresholds)"
    accuracy: ThresholdsSchema.model_fields["accuracy"].annotation
    max_drop_vs_fp32: ThresholdsSchema.model_fields["max_drop_vs_fp32"].annotation = {}


class CardSchema(ThresholdsSchema):
    EXPECTED: ClassVar[str] = ("a card: card, label, library, model, weights, checkpoint, preprocess, calibration, "
                               "source, batch_size, accuracy, max_drop_vs_fp32, performance, embedded, "
                               "embedded_params")
    card: CardName
    label: Text
    library: described(Literal["timm", "torchvision"], "timm or torchvision")
    model: described(Annotated[str, Field(min_length=1)], "a timm model name or a torchvision builder name")
    weights: optional(Text) = None
    checkpoint: CheckpointSpec
    preprocess: Union[described(Literal["published"], "'published'"), ExplicitPreprocess] = "published"
    calibration: CalibrationSpec = CalibrationSpec()
    embedded: Optional[EmbeddedThresholdsSchema] = None
    # How this card's embedded default is generated, where it differs from embedded.default.DEFAULT_PARAMS
    # (names and ranges are checked by embedded.default.params_for, before the default is generated).
    embedded_params: optional(described(dict[str, Union[bool, int, float]],
                                        "a mapping of embedded-default parameter names to numbers")) = None

    @model_validator(mode="after")
    def _torchvision_names_its_weights(self):
        if self.library == "torchvision" and not self.weights:
            raise ValueError("a torchvision card names its weights (e.g. ResNet50_Weights.IMAGENET1K_V1): their "
                             "published transform preprocesses the images")
        return self




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
    # embedded.default.EmbeddedParams overrides (the card's embedded_params:); embedded.default.params_for
    embedded_params: dict = field(default_factory=dict)

    @property
    def model_key(self) -> str:
        return self.model.key

    def identity(self) -> dict:
        """What the results JSON and baselines record of the card."""
        return {"name": self.name, "label": self.label, "model": self.model_key}


def label_of(run: dict) -> str | None:
    """The card label a results JSON's ``run`` recorded (None for results from before cards)."""
    return (run.get("card") or {}).get("label")


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
                              targets(document.embedded.accuracy), {}, targets(document.embedded.max_drop_vs_fp32))
    thresholds = replace(thresholds_from(document, path), model=model.key)
    calibration = document.calibration
    embedded_params = dict(document.embedded_params or {})  # checked against EmbeddedParams by the session
    return Card(document.card, document.label, path, model, document.checkpoint.file, document.checkpoint.parameters,
                preprocess, calibration.method, calibration.images, calibration.note, thresholds, embedded,
                embedded_params)


def thresholds_of(path: str | Path) -> Thresholds:
    """The thresholds a file holds: a card's (its results table), or a plain thresholds file's."""
    return load_card(path).thresholds if is_card(Path(path)) else load_thresholds(path)


def is_card(path: Path) -> bool:
    """A card file starts its mapping with ``card:`` (a plain thresholds file has none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("card:") for line in text.splitlines())
