"""Score a runner on preprocessed images: Top-1/Top-5 over every image, as the card counts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm


@dataclass
class AccuracyResult:
    precision: str
    backend: str
    device: str
    images: int  # the denominator, skipped-bad images included
    correct_top1: int
    correct_top5: int
    seconds: float
    skipped: int = 0
    fidelity: dict = field(default_factory=dict)  # vs FP32, when FP32 was scored too

    @property
    def top1(self) -> float:
        return 100.0 * self.correct_top1 / self.images

    @property
    def top5(self) -> float:
        return 100.0 * self.correct_top5 / self.images


TOP_K = 5


def top_classes(logits: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """The k best classes of each image, best first (int32)."""
    logits = np.asarray(logits)
    k = min(k, logits.shape[1])
    # argpartition: the k best classes without a full sort of 1000 logits per image
    best = np.argpartition(-logits, kth=k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(logits, best, axis=1), axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1).astype(np.int32)


def check_top_classes(top: np.ndarray, logits: np.ndarray, k: int = TOP_K) -> None:
    """Invariants of every scored batch, checked while scoring: a Top-5 computed from fewer classes
    (a broken top-k) would otherwise pass as a slightly lower Top-5."""
    k = min(k, logits.shape[1]) if logits.ndim == 2 else k
    if top.ndim != 2 or top.shape != (len(logits), k):
        raise RuntimeError(f"top-k: expected {k} classes per image for {len(logits)} images, got shape {top.shape}")
    if not len(top):
        return
    if (np.sort(top, axis=1)[:, 1:] == np.sort(top, axis=1)[:, :-1]).any():
        raise RuntimeError("top-k: an image's top classes repeat a class; Top-5 must count 5 distinct classes")
    ranked = np.take_along_axis(logits, top.astype(np.int64), axis=1)
    if (ranked[:, :-1] < ranked[:, 1:]).any() or (ranked[:, 0] < logits.max(axis=1)).any():
        raise RuntimeError("top-k: classes are not the best ones in order; Top-1 must be the arg-max and "
                           "Top-5 >= Top-1")
    if ((logits > ranked[:, -1:]).sum(axis=1) > k - 1).any():
        raise RuntimeError("top-k: a class outside the top classes scores higher than one inside")


def run_logits(runner, images, batch_size: int, preprocess, progress: bool = True, label: str = "") -> np.ndarray:
    """Logits of every image in ``images`` (data.image_cache.PreprocessedImages), in order."""
    outputs = []
    with tqdm(total=len(images.labels), desc=label or f"score {runner.info.precision}", unit="img",
              disable=not progress, leave=False) as bar:
        for batch, _labels in images.batches(batch_size, preprocess):
            outputs.append(np.asarray(runner.infer(batch), dtype=np.float32))
            bar.update(len(batch))
    return np.concatenate(outputs) if outputs else np.zeros((0, 1000), np.float32)


def score(runner, images, batch_size: int, preprocess,
          progress: bool = True) -> tuple[AccuracyResult, np.ndarray, np.ndarray]:
    """(result, logits, top-5 classes) of ``runner`` on ``images``."""
    start = time.perf_counter()
    logits = run_logits(runner, images, batch_size, preprocess, progress)
    labels = np.asarray(images.labels, dtype=np.int64)
    top5 = top_classes(logits)
    check_top_classes(top5, logits)
    hits = top5 == labels[:, None]
    skipped = len(getattr(images, "skipped", ()))
    result = AccuracyResult(
        precision=runner.info.precision,
        backend=runner.info.backend,
        device=runner.info.device,
        images=len(labels) + skipped,  # a skipped image counts as wrong, never leaves the denominator
        correct_top1=int(hits[:, :1].any(axis=1).sum()),
        correct_top5=int(hits.any(axis=1).sum()),
        seconds=time.perf_counter() - start,
        skipped=skipped,
    )
    return result, logits, top5
