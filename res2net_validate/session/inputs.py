"""Where a run's inputs come from: the weights, the dataset and its split, the preprocessed images,
the thresholds file.  Nothing here decides what may run; ``capabilities.Capabilities`` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cache import ArtifactCache
from ..errors import NotConfigured, ValidateError
from ..settings import Settings
from ..cards import DEFAULT_CARD, is_card, load_card
from ..thresholds import Thresholds, load_thresholds
from .memo import memoised, was_computed
from .progress import Progress


@dataclass(frozen=True)
class Source:
    weights: Path | None
    dataset_dir: Path | None
    embedded: bool
    skip_reason: str | None = None  # why no test can run (no weights)
    no_data_reason: str | None = None  # why nothing can be scored (no dataset): FPS only

    def describe(self) -> str:
        if self.embedded:
            return "embedded default (generated images, stand-in checkpoint)"
        if self.skip_reason:
            return f"not configured: {self.skip_reason}"
        if self.no_data_reason:
            return f"weights {self.weights}, no dataset: FPS only, accuracy tests skip"
        return f"weights {self.weights}, dataset {self.dataset_dir}"


def configured_source(settings: Settings, release: str) -> Source:
    """The source as the options describe it; cheap, generates nothing (for the header and preflight).
    ``release``: the card's released checkpoint file, looked for in the checkpoints dir."""
    if settings.embedded:
        return Source(None, None, embedded=True)
    weights = settings.weights
    if weights is None and (Path(settings.checkpoints_dir) / release).is_file():
        weights = Path(settings.checkpoints_dir) / release
    no_data = "no ImageNet val: pass --dataset-dir DIR or set DATASETS_DIR" if settings.dataset_dir is None else None
    if weights is None:
        missing = [f"no weights: pass --weights FILE ({release}) or put it in CHECKPOINTS_DIR", no_data]
        reason = "; ".join(filter(None, missing)) + "; or run the embedded default with --embedded"
        return Source(None, settings.dataset_dir, embedded=False, skip_reason=reason, no_data_reason=no_data)
    # Weights alone are enough for FPS: the performance tests run, the accuracy tests skip.
    return Source(weights, settings.dataset_dir, embedded=False, no_data_reason=no_data)


class Inputs:
    def __init__(self, settings: Settings, cache: ArtifactCache, progress: Progress):
        self.settings = settings
        self.cache = cache
        self.progress = progress
        self.card = load_card(settings.values.get("card") or DEFAULT_CARD)
        self.configured = configured_source(settings, self.card.checkpoint_file)

    @memoised
    def source(self) -> Source:
        """The source with its files in place: the embedded default generated (once per cache), or
        the user's checkpoint loaded, so a wrong file fails before minutes of preprocessing."""
        if not self.configured.embedded:
            self.checkpoint().model()
            return self.configured
        from ..embedded.default import ensure_card_default

        with self.progress.live():
            default = ensure_card_default(self.cache, self.card, progress=self.progress.enabled)
        return Source(default.weights, default.dataset_dir, embedded=True)

    @memoised
    def checkpoint(self):
        """The run's weights as a ``graphs.checkpoint.Checkpoint``: loaded once, shared by the export
        and the torch backend."""
        from ..graphs.checkpoint import Checkpoint

        weights = self.configured.weights if not self.configured.embedded else self.source().weights
        return Checkpoint(weights, self.card.model_key, self.card.checkpoint_file)

    @memoised
    def thresholds(self) -> Thresholds:
        """The card's thresholds (its embedded: section with --embedded), or the --thresholds file's: a
        thresholds file, or another card file whose thresholds then apply."""
        card, embedded = self.card, self.settings.embedded
        if self.settings.thresholds is not None:
            path = Path(self.settings.thresholds)
            if is_card(path):
                card = load_card(path)
            else:
                return self._of_this_model(load_thresholds(path))
        chosen = card.embedded if embedded else card.thresholds
        if chosen is None:
            raise ValidateError(f"card {card.path} has no embedded: section, so --embedded has no thresholds for "
                                f"{card.label}; add one (see the README's Cards section) or pass --thresholds FILE")
        return self._of_this_model(chosen)

    def thresholds_path(self) -> Path:
        return Path(self.settings.thresholds) if self.settings.thresholds is not None else self.card.path

    def _of_this_model(self, thresholds: Thresholds) -> Thresholds:
        model = self.card.model_key
        if thresholds.model and thresholds.model != model:
            raise ValidateError(
                f"thresholds file {thresholds.path}: model {thresholds.model!r} is not the model being validated "
                f"({model}, card {self.card.name}); pass the thresholds of {model} with --thresholds FILE, or "
                "choose the card of that model with --card")
        return thresholds

    @memoised
    def preprocess(self):
        """The card's preprocessing (its model's published transform, or the explicit values the card
        gives), by --preprocess's method; a conftest's hook may still replace it (plugin.wiring)."""
        from ..data.preprocess import Preprocess

        return Preprocess.for_card(self.card, self.settings.preprocess)

    @memoised
    def dataset(self):
        from ..data.layouts import discover

        # a configured folder needs no checkpoint check; only the embedded default's is generated first
        return discover((self.source() if self.configured.embedded else self.configured).dataset_dir)

    @memoised
    def split(self):
        """Which val images are scored and which calibrate INT8 (without a dataset: only the
        --calib-dir images, nothing to score)."""
        from ..data.selection import split_images

        s = self.settings
        has_data = not self.configured.no_data_reason
        # the card's calibration size where the user gave none (the embedded default keeps its own split)
        calib_count = s.calib_count if s.calib_count is not None or s.embedded else self.card.calibration_images
        return split_images(self.dataset().images if has_data else (), num_images=s.num_images if has_data else None,
                            calib_count=calib_count, calib_dir=s.calib_dir, calib_on_scored=s.calib_on_scored,
                            calib_list=s.calib_list, subset_seed=s.subset_seed)

    @memoised
    def scored_images(self, preprocess):
        if self.configured.no_data_reason:
            raise NotConfigured(self.configured.no_data_reason)
        return self._preprocessed(self.split().scored, preprocess, "preprocess val")

    @memoised
    def calibration_images(self, preprocess):
        """The preprocessed INT8 calibration images (``capabilities.calibrate()`` says whether there are any)."""
        from ..data.layouts import LabeledImage

        split = self.split()
        if split.calibration_dir_images:
            images = tuple(LabeledImage(path, -1) for path in split.calibration_dir_images)
        else:
            images = split.calibration
        return self._preprocessed(images, preprocess, "preprocess calibration")

    def population(self) -> int:
        """How many images the verdicts speak for: the 50,000 val images (any dataset here is a subset
        of them, by the canonical cross-check), or the embedded default's whole set, less the images
        carved out to calibrate INT8: those are never scored, so they are no unseen sample of it."""
        from ..data.layouts import NUM_VAL_IMAGES

        whole = len(self.dataset()) if self.configured.embedded else NUM_VAL_IMAGES
        return whole - self.split().calibration_held_out

    def notes(self) -> list[str]:
        return list(self.split().notes) if was_computed(self, "split") else []

    def _preprocessed(self, images, preprocess, description: str):
        from ..data.image_cache import preprocess_images

        with self.progress.live():
            return preprocess_images(images, preprocess, self.cache, workers=self.settings.workers,
                                     progress=self.progress.enabled, description=description,
                                     skip_bad=self.settings.skip_bad_images)
