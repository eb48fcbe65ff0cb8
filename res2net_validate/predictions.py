"""Per-image predictions: what paired verdicts compare, what the cache keeps, what a baseline holds.

A precision's predictions are the top-5 class indices of every scored image (undecodable images
skipped with ``--skip-bad-images`` count as wrong, as in the accuracy).  The FP32 reference is
cached by graph + images + backend + machine, so a relative gate scores it once per dataset; a
baseline file stores each precision's predictions with what identifies the run that made them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .cache import atomic_write_bytes
from .constants import NUM_CLASSES
from .errors import ValidateError
from .evaluate import TOP_K
from .imagenet import canonical_wnids
from .schemas import BaselineSchema, load_json, validate
from .verdicts import classes_lost

BASELINE_FORMAT = "res2net_validate-baseline-v1"
# Identity parts that must match for a baseline comparison to mean anything.
# model_name: a baseline of another card's model is no baseline (one saved before cards existed holds
# res2net50_14w_8s, the first card's model, as it was then).
MUST_MATCH = {"model_name": "model", "dataset": "dataset (image names, sizes and labels)",
              "preprocess": "preprocessing"}


@dataclass
class Predictions:
    precision: str
    names: tuple[str, ...]  # scored images, then skipped ones
    labels: np.ndarray  # int64, same order
    top5: np.ndarray  # int32 (decoded images, 5), best first
    logits: np.ndarray | None = None  # float32 (decoded images, classes), when scored in this process

    @classmethod
    def from_top5(cls, precision: str, top5: np.ndarray, images, logits=None) -> "Predictions":
        skipped = tuple(getattr(images, "skipped", ()))
        names = tuple(images.names) + skipped
        labels = np.concatenate([np.asarray(images.labels, np.int64), np.full(len(skipped), -1, np.int64)])
        return cls(precision, names, labels, np.asarray(top5, np.int32), logits)

    def correct(self, metric: str) -> np.ndarray:
        """Per-image correctness (bool) for ``top1`` or ``top5``; skipped images are wrong."""
        k = 1 if metric == "top1" else TOP_K
        decoded = len(self.top5)
        hits = (self.top5[:, :k] == self.labels[:decoded, None]).any(axis=1)
        return np.concatenate([hits, np.zeros(len(self.names) - decoded, bool)])


def images_identity(images) -> str:
    """Which images, in which order, with which labels: what cached predictions are valid for."""
    digest = hashlib.sha256()
    for name, label in zip(images.names, np.asarray(images.labels).tolist()):
        digest.update(f"{name}\t{label}\n".encode())
    for name in getattr(images, "skipped", ()):
        digest.update(f"{name}\tskipped\n".encode())
    return digest.hexdigest()


def cached_predictions(cache, key_parts: dict, score) -> tuple[np.ndarray, bool]:
    """Top-5 predictions for ``key_parts`` from the cache, or from ``score()`` on a miss.
    Returns (top5, reused)."""
    scored: list[np.ndarray] = []

    def build(tmp: Path) -> None:
        scored.append(np.asarray(score(), np.int32))
        with open(tmp, "wb") as f:
            np.save(f, scored[0])

    entry = cache.get_or_build("predictions", {"format": "top5-int32-npy-v1", **key_parts}, build, suffix=".npy")
    if scored:
        return scored[0], False
    return np.load(entry.path), True


# ---------------------------------------------------------------------------- fidelity to a reference
# How far a candidate's predictions follow the reference's on the same images: top-1 agreement, the
# classes that lost most and, with logits, mean cosine and KL(softmax(reference) || softmax(candidate)).


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Agreement of ``candidate`` logits with ``reference`` logits (both N x classes)."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2 or len(reference) == 0:
        raise ValidateError(
            f"logit comparison: reference {reference.shape} and candidate {candidate.shape} must be the same "
            "non-empty N x classes shape (score both precisions on the same images)."
        )
    agreement = float(np.mean(reference.argmax(1) == candidate.argmax(1)) * 100.0)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-30)
    log_p, log_q = _log_softmax(reference), _log_softmax(candidate)
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
    return {
        "images": int(len(reference)),
        "top1_agreement": agreement,
        "mean_cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
        "mean_kl": float(kl.mean()),
        "max_abs_diff": float(np.abs(reference - candidate).max()),
    }


def compare_runs(reference, candidate) -> dict:
    """Fidelity of ``candidate`` predictions to ``reference`` (both ``predictions.Predictions`` on
    the same images): top-1 agreement and the classes that lost most; logit cosine and KL too when
    both runs' logits are at hand (a cached reference keeps only its top-5)."""
    if reference.names != candidate.names:
        raise ValidateError("fidelity: the reference and the candidate were scored on different images")
    decoded = len(candidate.top5)
    agreement = float(np.mean(reference.top5[:decoded, 0] == candidate.top5[:, 0]) * 100.0) if decoded else 0.0
    reference_right, candidate_right = reference.correct("top1"), candidate.correct("top1")
    summary = {"images": len(candidate.names), "top1_agreement": agreement,
               "classes_lost": classes_lost(reference_right & ~candidate_right, candidate_right & ~reference_right,
                                            candidate.labels, canonical_wnids())}
    if reference.logits is not None and candidate.logits is not None:
        summary = {**compare_logits(reference.logits, candidate.logits), **summary}
    return summary


# ---------------------------------------------------------------------------- baseline files

def baseline_entry(predictions: Predictions, graph_sha256: str, backend: str, device: str) -> dict:
    return {"graph_sha256": graph_sha256, "backend": backend, "device": device, "images": list(predictions.names),
            "labels": predictions.labels.tolist(), "top5": predictions.top5.tolist()}


def write_baseline(path: Path, identity: dict, entries: dict[str, dict]) -> None:
    document = {"format": BASELINE_FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "identity": identity, "precisions": entries}
    atomic_write_bytes(Path(path), json.dumps(document).encode())


@dataclass
class Baseline:
    path: Path
    created: str
    identity: dict
    precisions: dict[str, dict]

    def check_comparable(self, identity: dict) -> None:
        """One clear error when the run is not on the same data and preprocessing as the baseline."""
        mine, theirs = json.loads(json.dumps(self.identity)), json.loads(json.dumps(identity))  # tuples -> lists
        for key, what in MUST_MATCH.items():
            if mine.get(key) != theirs.get(key):
                raise ValidateError(
                    f"--compare-baseline {self.path}: made on another {what} than this run "
                    f"({_differences(mine.get(key), theirs.get(key))}); "
                    "compare only runs on the same dataset and preprocessing, or save a new baseline with "
                    "--save-baseline")

    def predictions(self, precision: str) -> Predictions:
        entry = self.precisions.get(precision)
        if entry is None:
            raise ValidateError(f"--compare-baseline {self.path}: has no {precision} predictions (it holds "
                                f"{', '.join(self.precisions) or 'none'}); save a baseline with --precision "
                                f"{precision}")
        labels = np.asarray(entry["labels"], np.int64)
        top5 = np.asarray(entry["top5"], np.int32).reshape(-1, TOP_K)
        # Scored images come first (skipped ones, labelled -1, after them): every scored label is a class.
        bad = np.flatnonzero((labels[:len(top5)] < 0) | (labels[:len(top5)] >= NUM_CLASSES))
        if bad.size:
            i = int(bad[0])
            raise ValidateError(f"--compare-baseline {self.path}: {precision} label of {entry['images'][i]} is "
                                f"{int(labels[i])}, not a class 0..{NUM_CLASSES - 1} ({bad.size} such images); "
                                "the file was edited or damaged: save a new baseline with --save-baseline")
        return Predictions(precision, tuple(entry["images"]), labels, top5)


def read_baseline(path: Path) -> Baseline:
    """The baseline file, checked against ``schemas.BaselineSchema`` at load time: a malformed one is one
    error at start-up, not a KeyError after scoring."""
    path = Path(path)
    where = f"--compare-baseline {path}"
    if not path.exists():
        raise ValidateError(f"{where}: not found; write one with --save-baseline={path}")
    document = load_json(path, where)
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        raise ValidateError(f"{where}: not a {BASELINE_FORMAT} file; write one with --save-baseline")
    validate(BaselineSchema, document, where)
    # The validated document itself, not the model: its lists and dicts are what Baseline has always held.
    return Baseline(path, document.get("created", "?"), document.get("identity", {}), document.get("precisions", {}))


MIN_SHARED_SHARE = 0.9  # of the images this run scored, a baseline must hold at least this share


def against_baseline(baseline: Predictions, tonight: Predictions, where: str) -> tuple[Predictions, Predictions]:
    """Both on the images both scored, checked: the baseline's labels are this dataset's, and it holds at
    least MIN_SHARED_SHARE of tonight's images (a comparison on a handful would say nothing while
    printing a verdict)."""
    before, now = align(baseline, tonight)
    shared, scored = len(now.names), len(tonight.names)
    if shared < MIN_SHARED_SHARE * scored:
        raise ValidateError(f"{where}: shares {shared} of the {scored} images this run scored (at least "
                            f"{MIN_SHARED_SHARE:.0%} needed); score the same images as the baseline (same "
                            "--num-images, --subset-seed and calibration split) or save a new baseline")
    known = (before.labels >= 0) & (now.labels >= 0)
    differ = np.flatnonzero(known & (before.labels != now.labels))
    if differ.size:
        i = int(differ[0])
        raise ValidateError(f"{where}: {differ.size} of the {shared} shared images have other labels than in this "
                            f"run's dataset (e.g. {now.names[i]}: {int(before.labels[i])} in the baseline, "
                            f"{int(now.labels[i])} here); the baseline was edited or made on another labelling: "
                            "save a new one with --save-baseline")
    return before, now


def align(reference: Predictions, candidate: Predictions) -> tuple[Predictions, Predictions]:
    """Both restricted to the images both scored, in the candidate's order."""
    if reference.names == candidate.names:
        return reference, candidate
    position = {name: i for i, name in enumerate(reference.names)}
    shared = [i for i, name in enumerate(candidate.names) if name in position]
    if not shared:
        raise ValidateError("the baseline and this run scored no image in common; score the same images "
                            "(same --num-images and calibration split)")
    return _subset(reference, [position[candidate.names[i]] for i in shared]), _subset(candidate, shared)


def _subset(predictions: Predictions, rows: list[int]) -> Predictions:
    # Skipped images have no top-5 row: give them a row that matches no label.
    decoded = len(predictions.top5)
    padded = np.concatenate([predictions.top5, np.full((len(predictions.names) - decoded, TOP_K), -2, np.int32)])
    return Predictions(predictions.precision, tuple(predictions.names[i] for i in rows), predictions.labels[rows],
                       padded[rows])


def _differences(baseline, run, prefix: str = "") -> str:
    """Only what differs, e.g. "method: exact (baseline) vs fast (this run)": both values in full would be cut
    at the same length and hide the key that differs."""
    if isinstance(baseline, dict) and isinstance(run, dict):
        found = [_differences(baseline.get(k), run.get(k), f"{prefix}{k}.") for k in sorted({*baseline, *run})
                 if baseline.get(k) != run.get(k)]
        return "; ".join(found)
    def show(value):
        return value if isinstance(value, str) else "none" if value is None else _short(value)

    return f"{prefix[:-1] + ': ' if prefix else ''}{show(baseline)} (baseline) vs {show(run)} (this run)"


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
