"""One validation run: resolves where weights and data come from, builds what the
tests ask for once, and remembers the results the report needs.

Everything is lazy and memoised, so selecting only ``-m performance`` never scores
images, and selecting only ``--precision fp16`` never calibrates INT8.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

from .backends import get_backend
from .cache import ArtifactCache, check_can_create
from .errors import BackendUnavailable, NotConfigured, ValidateError
from .settings import Settings
from .thresholds import Thresholds, load_thresholds

ORIGINAL_CHECKPOINT = "res2net50_14w_8s-6527dddc.pth"
# Host memory one more image in a batch costs: ONNX Runtime FP32 on CPU peaks 12.6 MiB higher per image
# (batch 16 -> 48: 476 -> 881 MiB RSS); the input batch itself is 0.6 MiB of it.
BYTES_PER_IMAGE = 13 * 2**20


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None  # not Linux: nothing to check against


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


class ValidationSession:
    def __init__(self, settings: Settings, progress: bool = True,
                 live_output: Callable[[], ContextManager] = nullcontext):
        self.settings = settings
        self.live_output = live_output if progress else nullcontext
        self.progress = progress
        self.cache = ArtifactCache(settings.checkpoints_dir, lock_timeout=settings.values.get("lock_timeout"))
        self.started = time.perf_counter()
        self.setup_note: str | None = None  # start of the run -> first scored batch, and what the cache did
        self._memo: dict = {}
        self._runners: dict[str, object] = {}
        self._accuracy: dict[str, Scored] = {}
        self._reference_note: str | None = None
        self.verdicts_in_run = 1  # accuracy verdicts collected for the run (plugin.hooks counts them)

    # -- where things come from -------------------------------------------------
    def configured_source(self) -> Source:
        """The source as the options describe it; cheap, no generation (for the header)."""
        s = self.settings
        if s.embedded:
            return Source(None, None, embedded=True)
        weights = s.weights
        if weights is None and (Path(s.checkpoints_dir) / ORIGINAL_CHECKPOINT).is_file():
            weights = Path(s.checkpoints_dir) / ORIGINAL_CHECKPOINT
        no_data = "no ImageNet val: pass --dataset-dir DIR or set DATASETS_DIR" if s.dataset_dir is None else None
        if weights is None:
            missing = [f"no weights: pass --weights FILE ({ORIGINAL_CHECKPOINT}) or put it in CHECKPOINTS_DIR", no_data]
            reason = "; ".join(filter(None, missing)) + "; or run the embedded default with --embedded"
            return Source(None, s.dataset_dir, embedded=False, skip_reason=reason, no_data_reason=no_data)
        # Weights alone are enough for FPS: the performance tests run, the accuracy tests skip.
        return Source(weights, s.dataset_dir, embedded=False, no_data_reason=no_data)

    def check_paths(self) -> None:
        """Fail at start-up, not after minutes of work, on paths that do not exist or clash."""
        s = self.settings
        given = [name for name in ("weights", "dataset_dir") if s.values[name] is not None]
        if s.embedded and given:
            # The embedded default brings its own weights and data: silently ignoring these would
            # "validate" whatever checkpoint a CI job passed.
            others = " and ".join(f"--{name.replace('_', '-')} {s.values[name]} (from {s.sources[name]})"
                                  for name in given)
            raise ValidateError(f"--embedded (from {s.sources['embedded']}) runs on its own generated images and "
                                f"stand-in checkpoint, but {others} {'were' if len(given) > 1 else 'was'} also "
                                "given: use one or the other")
        checks = [("calib_dir", True, "a directory of images"), ("calib_list", False, "a list file"),
                  ("compare_baseline", False, "a baseline file written by --save-baseline=FILE")]
        checks += [("weights", False, "a checkpoint file (.pth or .safetensors)"),
                   ("dataset_dir", True, "the ImageNet validation folder")]
        for name, want_dir, what in checks:
            value = s.values[name]
            if value is None:
                continue
            path = Path(value)
            if not path.exists():
                problem = "not found"
            elif path.is_dir() != want_dir:
                problem = "is a directory" if path.is_dir() else "is a file"
            else:
                continue
            raise ValidateError(f"--{name.replace('_', '-')} {value} (from {s.sources[name]}): {problem}; "
                                f"expected {what}")
        for name in ("report_json", "save_baseline", "report_dir"):  # written at the end of the run
            value = s.values.get(name)
            if value is not None:
                target = Path(value) / "report.md" if name == "report_dir" else Path(value)
                check_output_file(target, f"--{name.replace('_', '-')} {value} (from {s.sources[name]})")

    def check_batch_size(self) -> None:
        """A batch that cannot fit in memory is a usage error now, not a MemoryError mid-run."""
        available = _available_memory()
        batch = self.settings.batch_size
        if available is not None and batch * BYTES_PER_IMAGE > available:
            raise ValidateError(
                f"--batch-size {batch} (from {self.settings.sources['batch_size']}): needs about "
                f"{batch * BYTES_PER_IMAGE / 2**30:.1f} GiB of memory ({BYTES_PER_IMAGE / 2**20:.0f} MiB per image), "
                f"but {available / 2**30:.1f} GiB are available; use --batch-size {max(1, available // BYTES_PER_IMAGE)} "
                "or less")

    def check_backend(self) -> None:
        """A backend chosen by name that cannot run a selected precision (or the FP32 reference a relative
        gate needs) is a usage error now: skipping would turn a CI gate green without testing anything.
        ``auto`` falls back on its own, so it is not checked."""
        s = self.settings
        if s.backend == "auto":
            return
        wanted = [(precision, "") for precision in s.precision]
        source = self.configured_source()
        if "fp32" not in s.precision and not source.skip_reason and not source.no_data_reason:
            gated = [p for p in s.precision if self.wants_reference(p)]
            if gated:
                wanted.append(("fp32", f" (the FP32 reference the relative gate of {', '.join(gated)} needs)"))
        backend = self.backend()
        for precision, why in wanted:
            usable = backend.supports(precision)
            if not usable:
                raise ValidateError(f"--backend {s.backend} (from {s.sources['backend']}) cannot run "
                                    f"{precision}{why}: {usable.reason}")

    def source(self) -> Source:
        if "source" not in self._memo:
            source = self.configured_source()
            if source.embedded:
                from .embedded.default import ensure_embedded_default

                with self.live_output():
                    default = ensure_embedded_default(self.cache, progress=self.progress)
                source = Source(default.weights, default.dataset_dir, embedded=True)
            else:
                self._checkpoint(source.weights)  # a wrong checkpoint fails before minutes of preprocessing
            self._memo["source"] = source
        return self._memo["source"]

    def torch_model(self):
        """The FP32 module of the run's weights: loaded once per run, shared by the export and the torch
        backend (which never change it in place)."""
        return self._checkpoint(self.source().weights)

    def _checkpoint(self, weights: Path):
        if "torch_model" not in self._memo:
            from .graphs import checkpoint

            self._memo["torch_model"] = checkpoint.load_model(weights)
        return self._memo["torch_model"]

    def thresholds_path(self) -> Path:
        if self.settings.thresholds is not None:
            return Path(self.settings.thresholds)
        name = "embedded.yaml" if self.settings.embedded else "res2net50.yaml"
        from .thresholds import PACKAGED

        return PACKAGED / name

    def thresholds(self) -> Thresholds:
        if "thresholds" not in self._memo:
            path = self.thresholds_path()
            if self.settings.thresholds is None and not path.is_file():
                raise ValidateError(
                    f"no thresholds file at {path}: the default thresholds ship inside the res2net_validate "
                    "package (package data), and this installation lacks them. Reinstall it (pip install .), "
                    "or pass --thresholds FILE.")
            thresholds = load_thresholds(path)
            from . import MODEL_NAME

            if thresholds.model and thresholds.model != MODEL_NAME:
                raise ValidateError(
                    f"thresholds file {path}: model {thresholds.model!r} is not the model being validated "
                    f"({MODEL_NAME}); pass the thresholds of {MODEL_NAME} with --thresholds FILE")
            self._memo["thresholds"] = thresholds
        return self._memo["thresholds"]

    # -- data ---------------------------------------------------------------------
    def dataset(self):
        if "dataset" not in self._memo:
            from .data.layouts import discover

            # the configured folder needs no checkpoint check; only the embedded default's is generated
            source = self.configured_source()
            self._memo["dataset"] = discover((self.source() if source.embedded else source).dataset_dir)
        return self._memo["dataset"]

    def check_dataset(self) -> None:
        """A --dataset-dir with no supported layout, or fewer images than --num-images asks for, is one usage
        line at start-up, not a test failure after the model is loaded and exported. Memoised: the run reuses it."""
        source = self.configured_source()
        if source.embedded or source.skip_reason or source.no_data_reason:
            return  # the embedded default is generated later; without weights or data nothing is scored
        self.split()  # discovers the layout and splits it; both memoised for the run

    def split(self):
        """Which val images are scored and which calibrate INT8 (without a dataset: only the
        --calib-dir images, nothing to score)."""
        if "split" not in self._memo:
            from .data.selection import split_images

            s = self.settings
            has_data = not self.configured_source().no_data_reason  # the same, without loading the weights
            self._memo["split"] = split_images(
                self.dataset().images if has_data else (), num_images=s.num_images if has_data else None,
                calib_count=s.calib_count, calib_dir=s.calib_dir, calib_on_scored=s.calib_on_scored,
                calib_list=s.calib_list, subset_seed=s.subset_seed,
            )
        return self._memo["split"]

    def _preprocessed(self, images, preprocess, description: str):
        from .data.image_cache import preprocess_images

        with self.live_output():
            return preprocess_images(images, preprocess, self.cache, workers=self.settings.workers,
                                     progress=self.progress, description=description,
                                     skip_bad=self.settings.skip_bad_images)

    def scored_images(self, preprocess):
        if self.source().no_data_reason:
            raise NotConfigured(self.source().no_data_reason)
        key = ("scored", preprocess)
        if key not in self._memo:
            self._memo[key] = self._preprocessed(self.split().scored, preprocess, "preprocess val")
        return self._memo[key]

    def calibration_images(self, preprocess):
        """The preprocessed INT8 calibration images; None when there are none to take (no dataset
        and no --calib-dir): then only building the INT8 graph skips, FP16/FP32 still run."""
        if self.source().no_data_reason and self.settings.calib_dir is None:
            return None  # (a --calib-list alone names val images, and there is no val here)
        key = ("calibration", preprocess)
        if key not in self._memo:
            from .data.layouts import LabeledImage

            split = self.split()
            if split.calibration_dir_images:
                images = tuple(LabeledImage(path, -1) for path in split.calibration_dir_images)
            else:
                images = split.calibration
            self._memo[key] = self._preprocessed(images, preprocess, "preprocess calibration")
        return self._memo[key]

    # -- model ----------------------------------------------------------------------
    def calibration_settings(self):
        from .graphs.calibrate import CalibrationSettings

        return CalibrationSettings(method=self.settings.calib_method, percentile=self.settings.calib_percentile)

    def artifacts(self, calibration_images, preprocess):
        key = ("artifacts", id(calibration_images), preprocess)
        if key not in self._memo:
            from .graphs.artifacts import Artifacts, CalibrationSource

            source = None
            if calibration_images is not None:
                listed = " listed in --calib-list" if self.settings.calib_list is not None else ""
                if self.settings.calib_dir is not None:
                    description = f"{len(calibration_images)} images{listed} from --calib-dir"
                else:
                    description = f"{len(calibration_images)} held-out val images{listed}"
                source = CalibrationSource(calibration_images, preprocess, self.settings.batch_size, description)
            self._memo[key] = Artifacts(self.cache, self.source().weights, source, self.calibration_settings(),
                                        progress=self.progress, load_model=self.torch_model)
        return self._memo[key]

    def backend(self):
        if "backend" not in self._memo:
            self._memo["backend"] = get_backend(self.settings.backend, cache=self.cache)
        return self._memo["backend"]

    def int8_flavour(self) -> str:
        """The INT8 Q/DQ flavour, decided once: --int8-flavour, or the one the backend declares ("auto")."""
        chosen = self.settings.int8_flavour
        return (self.backend().int8_flavour or "onnxruntime") if chosen == "auto" else chosen

    def graph(self, precision: str, artifacts):
        """The path of ``precision``'s graph, exported, converted or calibrated here on a cache miss."""
        if precision == "int8" and artifacts.calibration is None:
            raise NotConfigured("INT8 needs calibration images: pass --calib-dir DIR, or --dataset-dir DIR "
                                "to carve them out of val")
        return artifacts.graph(precision, self.int8_flavour() if precision == "int8" else None)

    def model_input(self, precision: str, artifacts):
        """What ``backend.open`` receives for ``precision``, resolved before it opens."""
        from .backends.base import RUNS_TORCH

        if self.backend().runs == RUNS_TORCH:
            return self.torch_model()
        return self.graph(precision, artifacts)

    def runner(self, precision: str, artifacts):
        if precision not in self._runners:
            backend = self.backend()
            usable = backend.supports(precision)
            if not usable:
                raise BackendUnavailable(f"backend {backend.name} cannot run {precision}: {usable.reason}")
            with self.live_output():  # may export, convert or calibrate, then build a TensorRT engine
                model = self.model_input(precision, artifacts)
                self._runners[precision] = backend.open(model, precision, (1, self.settings.batch_size))
        return self._runners[precision]

    def population(self) -> int:
        """How many images the verdicts speak for: the 50,000 val images (any dataset here is a subset
        of them, by the canonical cross-check), or the embedded default's whole set, less the images
        carved out to calibrate INT8: those are never scored, so they are no unseen sample of it."""
        from .data.layouts import NUM_VAL_IMAGES

        whole = len(self.dataset()) if self.source().embedded else NUM_VAL_IMAGES
        return whole - self.split().calibration_held_out

    def wants_reference(self, precision: str) -> bool:
        """FP32 is scored beside ``precision`` when selected, or when a relative gate needs it."""
        if precision == "fp32":
            return False
        return "fp32" in self.settings.precision or self.thresholds().drop_allowance(precision) is not None

    def _score(self, precision: str, artifacts, images, preprocess):
        from .evaluate import score

        runner = self.runner(precision, artifacts)
        if self.setup_note is None:
            built = sorted(set(self.cache.built))
            self.setup_note = (f"setup before the first scored batch: {time.perf_counter() - self.started:.1f} s "
                               f"(artifacts reused: {len(self.cache.reused)}, built: {len(self.cache.built)}"
                               + (f" - {', '.join(built)}" if built else "") + ")")
        with self.live_output():
            return score(runner, images, self.settings.batch_size, preprocess, self.progress)

    def accuracy(self, precision: str, artifacts, images, preprocess) -> "Scored":
        """``precision``'s AccuracyResult and per-image predictions, scored once per session."""
        if precision not in self._accuracy:
            from .predictions import Predictions

            reference = self.reference(artifacts, images, preprocess) if self.wants_reference(precision) else None
            result, logits, top5 = self._score(precision, artifacts, images, preprocess)
            predictions = Predictions.from_top5(precision, top5, images, logits)
            if reference is not None:
                from .predictions import compare_runs

                result.fidelity = compare_runs(reference, predictions)
            self._accuracy[precision] = Scored(result, predictions)
        return self._accuracy[precision]

    def reference(self, artifacts, images, preprocess):
        """FP32 predictions on the same images: scored (when fp32 is under test) or cached per
        graph + images + backend + machine (when only a relative gate needs them)."""
        if "fp32" in self.settings.precision:
            return self.accuracy("fp32", artifacts, images, preprocess).predictions
        if "reference" not in self._memo:
            from .predictions import Predictions, cached_predictions

            logits: list = []

            def score_fp32():
                _result, fp32_logits, top5 = self._score("fp32", artifacts, images, preprocess)
                logits.append(fp32_logits)
                return top5

            top5, reused = cached_predictions(self.cache, self._reference_key(artifacts, images, preprocess),
                                              score_fp32)
            self._memo["reference"] = Predictions.from_top5("fp32", top5, images, logits[0] if logits else None)
            self._reference_note = (
                f"fp32 reference for relative gates: {'reused from the cache' if reused else 'scored'} on the same "
                f"{len(self._memo['reference'].names)} images (fp32 is not under test: add it to --precision)")
        return self._memo["reference"]

    def model_sha256(self, precision: str, artifacts) -> str:
        """The sha256 of what the backend runs for ``precision``: the weights file for torch, else the graph."""
        from .backends.base import RUNS_TORCH
        from .cache import file_sha256

        torch = self.backend().runs == RUNS_TORCH
        return file_sha256(self.source().weights if torch else self.graph(precision, artifacts))  # memoised there

    def _reference_key(self, artifacts, images, preprocess) -> dict:
        from .backends.devices import cpu_description, describe_gpus, device_report
        from .predictions import images_identity

        backend = self.backend()
        return {"model_sha256": self.model_sha256("fp32", artifacts), "images": images_identity(images),
                "preprocess": preprocess.key_parts(), "backend": backend.name, "runtime": _runtime_versions(),
                "cpu": cpu_description(), "gpus": describe_gpus(device_report()), "batch_size": self.settings.batch_size}

    def model_identity(self) -> dict:
        """What identifies the model this run measures (an FPS-only run has no more): source, thresholds
        file, model name, weights."""
        if "model_identity" not in self._memo:
            from . import MODEL_NAME
            from .cache import file_sha256

            thresholds = self.thresholds()
            self._memo["model_identity"] = {
                "source": self.source().describe(),
                "thresholds": {"path": str(thresholds.path), "sha256": file_sha256(thresholds.path),
                               "model": thresholds.model, "batch_size": thresholds.batch_size},
                "model_name": MODEL_NAME,
                "weights_sha256": file_sha256(self.source().weights),
            }
        return self._memo["model_identity"]

    def identity(self, preprocess) -> dict:
        """What identifies this run's inputs, for baselines and merged reports: the model, plus the
        dataset and preprocessing it was scored on."""
        if "identity" not in self._memo:
            has_data = not self.source().no_data_reason
            self._memo["identity"] = {**self.model_identity(),
                                      "dataset": self._dataset_identity() if has_data else None,
                                      "preprocess": preprocess.settings()}
        return self._memo["identity"]

    def _dataset_identity(self) -> dict:
        """The dataset a baseline was made on: names, sizes and labels (no mtimes: a copy matches)."""
        from .data.layouts import fingerprint_images

        found = fingerprint_images(self.dataset().images, mtimes=False)
        return {"fingerprint": found["files_sha256"], "images": found["count"], "population": self.population()}

    def baseline(self):
        if "baseline" not in self._memo:
            from .predictions import read_baseline

            self._memo["baseline"] = read_baseline(self.settings.compare_baseline)
        return self._memo["baseline"]

    def check_baseline_comparable(self, preprocess) -> None:
        """--compare-baseline against this run's data and preprocessing, before anything is scored."""
        self.baseline().check_comparable(self.identity(preprocess))

    def notes(self, artifacts=None) -> list[str]:
        notes = list(self.split().notes) if "split" in self._memo else []
        if self.setup_note is not None:
            notes.append(self.setup_note)
        if self._reference_note:
            notes.append(self._reference_note)
        if artifacts is not None:
            for graph in artifacts.graphs.values():
                notes.extend(graph.notes())
        return notes

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()


def check_output_file(path: Path, label: str) -> None:
    """A file the run writes at its end must be writable at its start: its folder exists (or can be
    created) and is writable, and the path is not a folder."""
    if path.is_dir():
        raise ValidateError(f"{label}: is a directory; expected a file name")
    check_can_create(path.parent, label)


@dataclass
class Scored:
    result: object  # evaluate.AccuracyResult
    predictions: object  # predictions.Predictions


def _runtime_versions() -> dict:
    from .versions import package_versions

    return package_versions("onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", skip_missing=True)

