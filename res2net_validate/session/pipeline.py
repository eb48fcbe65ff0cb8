"""What a run builds and measures: graphs, runners, scores and the FP32 reference, each once per
argument.  The backend and the cache come in through the constructor; nothing here calls back up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backends.base import RUNS_TORCH
from ..cache import ArtifactCache, file_sha256
from ..settings import Settings
from .capabilities import Capabilities, require
from .inputs import Inputs
from .memo import memoised
from .progress import Progress


@dataclass
class Scored:
    result: object  # evaluate.AccuracyResult
    predictions: object  # predictions.Predictions


@dataclass(frozen=True)
class Model:
    """What a backend runs for one precision: the file that identifies it and what ``open`` receives."""
    file: Path  # the weights (torch) or the precision's graph
    opened: object  # the torch module, or the graph's path


class Pipeline:
    def __init__(self, settings: Settings, cache: ArtifactCache, backend, inputs: Inputs,
                 capabilities: Capabilities, progress: Progress):
        self.settings = settings
        self.cache = cache
        self.backend = backend
        self.inputs = inputs
        self.capabilities = capabilities
        self.progress = progress
        self._runners: dict[str, object] = {}
        self._events: list[str] = []  # the setup time and where the reference came from, once each

    @memoised
    def artifacts(self, calibration_images, preprocess):
        """The run's graphs (built on first use); INT8 calibrates on ``calibration_images`` (None: no INT8)."""
        from ..graphs.artifacts import Artifacts, CalibrationSource
        from ..graphs.calibrate import CalibrationSettings

        source = None
        if calibration_images is not None:
            s = self.settings
            listed = " listed in --calib-list" if s.calib_list is not None else ""
            description = (f"{len(calibration_images)} images{listed} from --calib-dir" if s.calib_dir is not None
                           else f"{len(calibration_images)} held-out val images{listed}")
            source = CalibrationSource(calibration_images, preprocess, s.batch_size, description)
        # the card's observer unless --calib-method was given
        given = self.settings.sources.get("calib_method", "default") != "default"
        method = self.settings.calib_method if given else self.inputs.card.calibration_method
        settings = CalibrationSettings(method=method, percentile=self.settings.calib_percentile)
        return Artifacts(self.cache, self.inputs.checkpoint(), source, settings, progress=self.progress.enabled)

    @memoised
    def model(self, precision: str, artifacts) -> Model:
        """What the backend runs for ``precision``: the torch module of the weights, or the precision's
        graph (exported, converted or calibrated here on a cache miss)."""
        if self.backend.runs == RUNS_TORCH:
            checkpoint = self.inputs.checkpoint()
            return Model(checkpoint.path, checkpoint.model())
        flavour = self.capabilities.int8_flavour() if precision == "int8" else None
        path = artifacts.graph(precision, flavour)
        return Model(path, path)

    def runner(self, precision: str, artifacts):
        if precision not in self._runners:
            require(self.capabilities.run(precision))
            with self.progress.live():  # may export, convert or calibrate, then build a TensorRT engine
                model = self.model(precision, artifacts)
                self._runners[precision] = self.backend.open(model.opened, precision, (1, self.settings.batch_size))
        return self._runners[precision]

    def model_sha256(self, precision: str, artifacts) -> str:
        return file_sha256(self.model(precision, artifacts).file)  # memoised there

    @memoised
    def accuracy(self, precision: str, artifacts, images, preprocess) -> Scored:
        """``precision``'s AccuracyResult and per-image predictions, with its fidelity to FP32 when
        a reference is wanted."""
        from ..predictions import compare_runs

        scored = self._scored(precision, artifacts, images, preprocess)
        if self.capabilities.wants_reference(precision):
            scored.result.fidelity = compare_runs(self.reference(artifacts, images, preprocess), scored.predictions)
        return scored

    def reference(self, artifacts, images, preprocess):
        """FP32 predictions on the same images: scored (when fp32 is under test) or cached per
        graph + images + backend + machine (when only a relative gate needs them)."""
        if "fp32" in self.settings.precision:
            return self._scored("fp32", artifacts, images, preprocess).predictions
        return self._cached_reference(artifacts, images, preprocess)

    def notes(self) -> list[str]:
        return list(self._events)

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()

    @memoised
    def _scored(self, precision: str, artifacts, images, preprocess) -> Scored:
        from ..predictions import Predictions

        result, logits, top5 = self._score(precision, artifacts, images, preprocess)
        return Scored(result, Predictions.from_top5(precision, top5, images, logits))

    @memoised
    def _cached_reference(self, artifacts, images, preprocess):
        from ..predictions import Predictions, cached_predictions

        logits: list = []

        def score_fp32():
            _result, fp32_logits, top5 = self._score("fp32", artifacts, images, preprocess)
            logits.append(fp32_logits)
            return top5

        top5, reused = cached_predictions(self.cache, self._reference_key(artifacts, images, preprocess), score_fp32)
        reference = Predictions.from_top5("fp32", top5, images, logits[0] if logits else None)
        self._events.append(
            f"fp32 reference for relative gates: {'reused from the cache' if reused else 'scored'} on the same "
            f"{len(reference.names)} images (fp32 is not under test: add it to --precision)")
        return reference

    def _score(self, precision: str, artifacts, images, preprocess):
        from ..evaluate import score

        runner = self.runner(precision, artifacts)
        if not any(event.startswith("setup") for event in self._events):
            built = sorted(set(self.cache.built))
            self._events.insert(0, f"setup before the first scored batch: {self.progress.seconds():.1f} s "
                                   f"(artifacts reused: {len(self.cache.reused)}, built: {len(self.cache.built)}"
                                   + (f" - {', '.join(built)}" if built else "") + ")")
        with self.progress.live():
            return score(runner, images, self.settings.batch_size, preprocess, self.progress.enabled)

    def _reference_key(self, artifacts, images, preprocess) -> dict:
        from ..backends.devices import describe_gpus, device_report
        from ..backends.devices import cpu_description
        from ..predictions import images_identity

        return {"model_sha256": self.model_sha256("fp32", artifacts), "images": images_identity(images),
                "preprocess": preprocess.key_parts(), "backend": self.backend.name, "runtime": runtime_versions(),
                "cpu": cpu_description(), "gpus": describe_gpus(device_report()),
                "batch_size": self.settings.batch_size}


def runtime_versions() -> dict:
    """The inference runtimes installed here (those missing left out): part of the reference's cache key."""
    from ..versions import package_versions

    return package_versions("onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", skip_missing=True)
