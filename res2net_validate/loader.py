"""Decode the validation images once, in parallel, into a cached uint8 NCHW array.

The expensive stage (JPEG decode, resize, crop) runs once per dataset content and transform; the
result is an ``.npy`` file in the artifact cache that every precision and backend memory-maps.
Normalisation (cheap, bit-exact table lookups) happens per batch in :meth:`PreprocessedImages.batches`.

Parallelism uses threads: PIL and torchvision release the GIL while decoding and resizing, and
threads write straight into the memory-mapped output, so nothing but indices crosses between
workers and at most ``2 x workers`` chunks of images are in flight (bounded memory).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .cache import ArtifactCache
from .dataset import LabeledImage, fingerprint_images
from .errors import ValidateError
from .preprocess import BadImageError, Preprocess

CACHE_KIND = "images"
CACHE_FORMAT = "uint8-nchw-npy-v1"
IMAGES_FILE = "images.npy"
META_FILE = "meta.json"
CHUNK_SIZE = 16  # images per task: small enough for a smooth progress bar, large enough to amortise


@dataclass
class PreprocessedImages:
    images: np.ndarray  # uint8 (N, 3, S, S), may be a read-only np.memmap
    labels: np.ndarray  # int64 (N,), the true labels
    names: tuple[str, ...]
    cache_path: Path | None
    built: bool  # False when read from the cache
    # Images that could not be decoded (only with skip_bad=True).  They stay in ``images`` as zeros
    # and in the denominator: batches() gives them the label -1, which no prediction can match.
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def skipped_mask(self) -> np.ndarray:
        skipped = set(self.skipped)
        return np.array([name in skipped for name in self.names], dtype=bool)

    @property
    def scored_labels(self) -> np.ndarray:
        """Labels to score against: the true ones, and -1 (always wrong) for skipped images."""
        if not self.skipped:
            return self.labels
        labels = self.labels.copy()
        labels[self.skipped_mask] = -1
        return labels

    def batches(self, batch_size: int, preprocess: Preprocess) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """float32 normalised NCHW batches with int64 labels (``scored_labels``); the last may be short."""
        if batch_size <= 0:
            raise ValidateError(f"batch size {batch_size}: must be positive")
        size = preprocess.image_size
        if self.images.shape[2:] != (size, size):
            raise ValueError(f"images are {self.images.shape[2:]}, preprocess expects {size}x{size}")
        labels = self.scored_labels
        for start in range(0, len(labels), batch_size):
            stop = min(start + batch_size, len(labels))
            yield preprocess.normalize(self.images[start:stop]), labels[start:stop]


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def preprocess_images(
    images: Sequence[LabeledImage],
    preprocess: Preprocess,
    cache: ArtifactCache | None,
    workers: int | None = None,
    progress: bool = True,
    description: str = "preprocess",
    skip_bad: bool = False,
) -> PreprocessedImages:
    """Decode, resize and crop ``images`` -- or read them back from ``cache`` if done before.

    The cache key covers exactly these images (names, sizes, mtimes, labels), the transform's pixel
    settings and the package/Pillow versions, so a hit can never be stale.  A corrupt image is a
    :class:`ValidateError` naming it unless ``skip_bad``, which records it in ``skipped``.
    """
    images = list(images)
    labels = np.array([image.label for image in images], dtype=np.int64)
    names = tuple(image.name for image in images)
    shape = (len(images), 3, preprocess.image_size, preprocess.image_size)
    workers = default_workers() if workers is None else max(1, int(workers))

    if cache is None or not images:
        array = np.empty(shape, dtype=np.uint8)
        bad = _fill(array, images, preprocess, workers, progress, description, skip_bad)
        return PreprocessedImages(array, labels, names, None, True, _skipped_names(names, bad))

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        array = np.lib.format.open_memmap(tmp / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=shape)
        bad = _fill(array, images, preprocess, workers, progress, description, skip_bad)
        array.flush()
        del array
        meta = {
            "format": CACHE_FORMAT,
            "shape": list(shape),
            "names": list(names),
            "labels": labels.tolist(),
            "skipped": {names[index]: reason for index, reason in sorted(bad.items())},
        }
        (tmp / META_FILE).write_text(json.dumps(meta))

    key_parts = {
        "format": CACHE_FORMAT,
        "images": fingerprint_images(images),
        "preprocess": preprocess.pixel_key_parts(),
    }
    entry = cache.get_or_build(CACHE_KIND, key_parts, build, suffix=".u8")
    array, skipped = _read_entry(entry.path, images, names, labels, shape, skip_bad)
    return PreprocessedImages(array, labels, names, entry.path, entry.built, skipped)


def _read_entry(path: Path, images, names, labels, shape, skip_bad: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    meta = json.loads((path / META_FILE).read_text())
    array = np.load(path / IMAGES_FILE, mmap_mode="r")
    if meta.get("format") != CACHE_FORMAT or tuple(array.shape) != shape or tuple(meta["names"]) != names \
            or meta["labels"] != labels.tolist():
        raise ValidateError(f"preprocessed-image cache {path} does not match its key; delete it and rerun")
    skipped_reasons: dict[str, str] = meta.get("skipped", {})
    if skipped_reasons and not skip_bad:
        # Built earlier with skip_bad; without it the first bad file is an error, as on a fresh build.
        name, reason = next(iter(skipped_reasons.items()))
        raise BadImageError(images[names.index(name)].path, f"{reason} ({len(skipped_reasons)} undecodable images in this dataset)")
    return array, _skipped_names(names, {names.index(n): r for n, r in skipped_reasons.items()})


def _skipped_names(names: tuple[str, ...], bad: dict[int, str]) -> tuple[str, ...]:
    return tuple(names[index] for index in sorted(bad))


def _fill(
    out: np.ndarray,
    images: Sequence[LabeledImage],
    preprocess: Preprocess,
    workers: int,
    progress: bool,
    description: str,
    skip_bad: bool,
) -> dict[int, str]:
    """Write every image into ``out``; return {index: reason} of the undecodable ones (zeros in ``out``)."""
    bad: dict[int, str] = {}

    def run_chunk(start: int, stop: int) -> list[tuple[int, BadImageError]]:
        failures = []
        for index in range(start, stop):
            try:
                out[index] = preprocess.load_uint8(images[index].path)
            except BadImageError as exc:
                out[index] = 0
                failures.append((index, exc))
        return failures

    def record(failures: list[tuple[int, BadImageError]]) -> None:
        for index, exc in failures:
            if not skip_bad:
                raise exc
            bad[index] = exc.reason

    chunks = [(start, min(start + CHUNK_SIZE, len(images))) for start in range(0, len(images), CHUNK_SIZE)]
    with tqdm(total=len(images), desc=description, unit="img", disable=not progress, smoothing=0.1) as bar, \
            _single_torch_thread(preprocess.method == "fast" and workers > 1):
        if workers == 1:
            for start, stop in chunks:
                record(run_chunk(start, stop))
                bar.update(stop - start)
            return bad
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preprocess") as pool:
            pending: dict = {}
            queue = iter(chunks)
            try:
                while True:
                    # Bounded prefetch: never more than 2 chunks per worker in flight.
                    while len(pending) < 2 * workers:
                        chunk = next(queue, None)
                        if chunk is None:
                            break
                        pending[pool.submit(run_chunk, *chunk)] = chunk
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        start, stop = pending.pop(future)
                        record(future.result())
                        bar.update(stop - start)
            finally:
                for future in pending:
                    future.cancel()
    return bad


@contextmanager
def _single_torch_thread(enabled: bool):
    """The fast path runs torch kernels in many threads at once: keep each one single-threaded."""
    if not enabled:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
