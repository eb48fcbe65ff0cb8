"""What identifies a run: the model it measures, the data and preprocessing it scored, and the
baseline it is compared with (checked to be comparable before anything is scored)."""

from __future__ import annotations

from ..settings import Settings
from .inputs import Inputs
from .memo import memoised


class RunIdentity:
    def __init__(self, settings: Settings, inputs: Inputs):
        self.settings = settings
        self.inputs = inputs

    @memoised
    def model(self) -> dict:
        """What identifies the model this run measures (an FPS-only run has no more): card, source,
        thresholds file, model name, weights."""
        from ..cache import file_sha256

        thresholds = self.inputs.thresholds()
        source = self.inputs.source()
        return {
            "card": self.inputs.card.identity(),
            "source": source.describe(),
            "thresholds": {"path": str(thresholds.path), "sha256": file_sha256(thresholds.path),
                           "model": thresholds.model, "batch_size": thresholds.batch_size},
            "model_name": self.inputs.card.model_key,
            "weights_sha256": file_sha256(source.weights),
        }

    @memoised
    def of_inputs(self, preprocess) -> dict:
        """The model, plus the dataset and preprocessing it was scored on (for baselines and merged reports)."""
        has_data = not self.inputs.configured.no_data_reason
        return {**self.model(), "dataset": self._dataset() if has_data else None,
                "preprocess": preprocess.settings()}

    @memoised
    def baseline(self):
        """The --compare-baseline file, read (and checked as a file) once."""
        from ..predictions import read_baseline

        return read_baseline(self.settings.compare_baseline)

    def check_baseline_comparable(self, preprocess) -> None:
        """--compare-baseline against this run's data and preprocessing, before anything is scored."""
        self.baseline().check_comparable(self.of_inputs(preprocess))

    def _dataset(self) -> dict:
        """The dataset a baseline was made on: names, sizes and labels (no mtimes: a copy matches)."""
        from ..data.layouts import fingerprint_images

        found = fingerprint_images(self.inputs.dataset().images, mtimes=False)
        return {"fingerprint": found["files_sha256"], "images": found["count"],
                "population": self.inputs.population()}
