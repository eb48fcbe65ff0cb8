"""Decode the validation images once, in parallel, into a cached uint8 NCHW array.

The expensive stage (JPEG decode, resize, crop) runs once per dataset content and transform; the
result is an ``.npy`` file in the artifact cache that every precision and backend memory-maps.
Normalisation (cheap, bit-exact) happens per batch in :meth:`PreprocessedImages.batches`.

Parallelism uses worker processes: measured here, neither PIL's decode/resize nor torchvision's
decode_jpeg scale with threads (the GIL), while processes do.
Each worker memory-maps the output file and writes its images straight into it: only file names
and indices cross between processes, and at most ``2 x workers`` chunks are in flight, so memory
stays bounded whatever the dataset size; reading it back (the calibration key, the batches)
unmaps each block once used (``release_pages``), so a pass keeps about one block resident.
Workers are spawned (not forked) so that a parent that already runs torch/OpenMP threads cannot
deadlock them, and they end with their parent (a killed parent included: PR_SET_PDEATHSIG, plus a
check of the parent pid where that is not available).

Integrity without an extra pass: ``meta.json`` records a sha256 per block of ``CHECKSUM_ROWS``
images, and :meth:`PreprocessedImages.rows` checks each block the first time it is read on its way
to the model.  The output file is allocated in full before the workers write into its memory map,
so a full disk is one clear error up front, never a SIGBUS half-way.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..cache import ArtifactCache, check_free_space, human_size
from .layouts import LabeledImage, fingerprint_images
from ..errors import BadImageError, DiskFullError, ValidateError
from .preprocess import SKIP_BAD_ADVICE, Preprocess

CACHE_KIND = "images"
CACHE_FORMAT = "uint8-nchw-npy-v1"  # the key's format; the checksums below are checked through `usable`
CHECKSUM_ROWS = 64  # images per checksummed block (9.6 MB at 224x224)
IMAGES_FILE = "images.npy"
META_FILE = "meta.json"
CHUNK_SIZE = 16  # images per task: a smooth progress bar, negligible scheduling overhead
MIN_IMAGES_FOR_POOL = 64  # below this, starting worker processes costs more than it saves


@dataclass
class PreprocessedImages:
    images: np.ndarray  # uint8 (N, 3, S, S), may be a read-only np.memmap
    labels: np.ndarray  # int64 (N,), the true labels
    names: tuple[str, ...]
    cache_path: Path | None
    built: bool  # False when read from the cache
    # Images that could not be decoded (only with skip_bad=True).  They are left out of ``images``,
    # ``labels`` and ``names`` but must stay in the accuracy denominator as wrong: see total_images.
    skipped: tuple[str, ...] = ()
    # On a build: {"seconds", "startup_seconds" (until the first chunk came back), "steady_img_per_s"}.
    build_timing: dict | None = None
    # sha256 per block of CHECKSUM_ROWS images (None: not checked, e.g. built in memory); and what to
    # do with a block that fails its check (the cache's discard, so that the next run rebuilds).
    block_sha256: tuple[str, ...] | None = None
    on_corrupt: object = None
    # The array the checksums describe: a copy with other images (dataclasses.replace in a conftest)
    # is the user's own data and is not checked against them.
    _checked_array: object = field(default=None, init=False, repr=False, compare=False)
    _verified: set = field(default_factory=set, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def total_images(self) -> int:
        """The accuracy denominator: decoded images plus skipped (counted wrong) ones."""
        return len(self.labels) + len(self.skipped)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """``images[start:stop]``, each block checked against its recorded sha256 the first time it is read."""
        if self.block_sha256 is not None and self.images is self._checked_array:
            for block in range(start // CHECKSUM_ROWS, -(-stop // CHECKSUM_ROWS)):
                if block not in self._verified:
                    self._verify_block(block)
        return self.images[start:stop]

    def _verify_block(self, block: int) -> None:
        rows = self.images[block * CHECKSUM_ROWS:(block + 1) * CHECKSUM_ROWS]
        if hashlib.sha256(np.ascontiguousarray(rows).data).hexdigest() == self.block_sha256[block]:
            self._verified.add(block)
            return
        where = self.cache_path / IMAGES_FILE if self.cache_path else "the preprocessed images"
        note = "it could not be removed (read-only cache?): delete it and rerun"
        if self.on_corrupt is not None:
            try:
                self.on_corrupt()
                note = "it was removed; rerun to rebuild it"
            except Exception:  # read-only, or locked: the message says what to do
                pass
        raise ValidateError(f"preprocessed-image cache {where} is corrupted: images "
                            f"{block * CHECKSUM_ROWS}-{block * CHECKSUM_ROWS + len(rows) - 1} do not match the "
                            f"checksum written with them; {note}")

    def batches(
        self, batch_size: int, preprocess: Preprocess, prefetch: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """float32 normalised NCHW batches with their int64 labels; the last batch may be short.

        Up to ``prefetch`` batches (default: one per core, at most 4) are normalised ahead in
        threads, so normalisation overlaps the consumer's inference and uses several cores.
        """
        if batch_size <= 0:
            raise ValidateError(f"batch size {batch_size}: must be positive")
        size = preprocess.image_size
        if self.images.shape[2:] != (size, size):
            raise ValueError(f"images are {self.images.shape[2:]}, preprocess expects {size}x{size}")
        bounds = [(start, min(start + batch_size, len(self.labels))) for start in range(0, len(self.labels), batch_size)]
        prefetch = min(4, default_workers()) if prefetch is None else max(1, prefetch)
        if prefetch == 1 or len(bounds) <= 1:
            for start, stop in bounds:
                rows = self.rows(start, stop)
                batch = preprocess.normalize(rows)
                release_pages(rows)
                yield batch, self.labels[start:stop]
            return
        with ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="normalize") as pool:
            ahead: deque = deque()  # (future batch, rows, labels), in order
            try:
                for start, stop in bounds:
                    rows = self.rows(start, stop)
                    ahead.append((pool.submit(preprocess.normalize, rows), rows, self.labels[start:stop]))
                    if len(ahead) >= prefetch:
                        future, rows, labels = ahead.popleft()
                        batch = future.result()
                        release_pages(rows)
                        yield batch, labels
                while ahead:
                    future, rows, labels = ahead.popleft()
                    batch = future.result()
                    release_pages(rows)
                    yield batch, labels
            finally:
                for future, _, _ in ahead:
                    future.cancel()


def release_pages(rows: np.ndarray) -> None:
    """Unmap the pages of ``rows``, read through a read-only memory map, from this process once used.

    The file stays in the OS page cache and a later read maps it again; without this, every image
    read once would stay resident in this process (RSS growing by 150 KB per 224x224 image), so a
    pass over the cache would not be memory-bounded.  Anything but a read-only ``np.memmap`` (an
    in-memory array, a copy-on-write map whose pages hold changes) is left alone."""
    mapped = getattr(rows, "_mmap", None)
    if not isinstance(rows, np.memmap) or rows.mode != "r" or mapped is None or not hasattr(mapped, "madvise"):
        return
    if rows.size == 0:
        return
    begin = rows.ctypes.data - np.frombuffer(mapped, np.uint8).ctypes.data  # offset in the map
    start = begin - begin % mmap.PAGESIZE  # madvise needs a page-aligned start
    mapped.madvise(mmap.MADV_DONTNEED, start, begin + rows.nbytes - start)


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
    :class:`ValidateError` naming it unless ``skip_bad``: then it is left out and listed in ``skipped``.
    """
    images = list(images)
    workers = default_workers() if workers is None else max(1, int(workers))
    if not images:
        empty = np.zeros((0, 3, preprocess.image_size, preprocess.image_size), dtype=np.uint8)
        return PreprocessedImages(empty, np.zeros(0, dtype=np.int64), (), None, True)
    if cache is None:
        scratch = Path(tempfile.mkdtemp(prefix="res2net_validate_images_"))
        try:
            timing = _build_entry(scratch / "entry", images, preprocess, workers, progress, description, skip_bad)
            loaded = _read_entry(scratch / "entry", images, built=True, skip_bad=skip_bad)
            loaded.build_timing = timing
            loaded.images = np.array(loaded.images)  # into memory: the scratch folder goes away
            loaded.block_sha256 = None
            return loaded
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    key_parts = {
        "format": CACHE_FORMAT,
        "images": fingerprint_images(images),
        "preprocess": preprocess.pixel_key_parts(),
    }
    timings: list[dict] = []
    entry = cache.get_or_build(
        CACHE_KIND,
        key_parts,
        lambda tmp: timings.append(_build_entry(tmp, images, preprocess, workers, progress, description, skip_bad)),
        suffix=".u8",
        needs_bytes=_array_bytes(len(images), preprocess.image_size),
        self_checked=(IMAGES_FILE,),  # 7.5 GB for ImageNet: checked block by block as it is read
        usable=_has_checksums,
    )
    result = _read_entry(entry.path, images, built=entry.built, skip_bad=skip_bad)
    result.cache_path = entry.path
    result.on_corrupt = lambda: cache.discard(entry.path)
    result.build_timing = timings[0] if timings else None
    return result


def _build_entry(folder: Path, images, preprocess: Preprocess, workers, progress, description, skip_bad) -> dict:
    """Write ``images.npy`` (decodable images only) and ``meta.json`` into a new ``folder``; return timings."""
    folder.mkdir(parents=True)
    shape = (len(images), 3, preprocess.image_size, preprocess.image_size)
    staging = folder / "staging.npy"
    _allocate_npy(staging, shape)
    timing = _Timing(len(images))
    bad = _fill(staging, images, preprocess, workers, progress, description, skip_bad, timing)
    keep = _kept_rows(len(images), bad)
    if bad:
        # Leave undecodable images out (rare: one streaming copy of the good rows).
        source = np.load(staging, mmap_mode="r")
        compact = _allocate_npy(folder / IMAGES_FILE, (len(keep),) + shape[1:])
        for start in range(0, len(keep), 256):
            compact[start : start + 256] = source[keep[start : start + 256]]
        compact.flush()
        del source, compact
        staging.unlink()
    else:
        staging.rename(folder / IMAGES_FILE)
    meta = {
        "format": CACHE_FORMAT,
        "checksum_rows": CHECKSUM_ROWS,
        "block_sha256": _block_checksums(np.load(folder / IMAGES_FILE, mmap_mode="r")),
        "names": [images[i].name for i in keep],
        "labels": [images[i].label for i in keep],
        "skipped": {images[i].name: reason for i, reason in sorted(bad.items())},
    }
    (folder / META_FILE).write_text(json.dumps(meta))
    return timing.summary()


class _Timing:
    """Build time, split into worker start-up (until the first chunk is back) and steady throughput."""

    def __init__(self, total: int):
        self.total, self.start = total, time.perf_counter()
        self.first_at: float | None = None
        self.first_count = 0

    def chunk_done(self, count: int) -> None:
        if self.first_at is None:
            self.first_at, self.first_count = time.perf_counter(), count

    def summary(self) -> dict:
        end = time.perf_counter()
        first_at = self.first_at or end
        rest = self.total - self.first_count
        steady = rest / (end - first_at) if rest and end > first_at else self.total / max(end - self.start, 1e-9)
        return {"seconds": end - self.start, "startup_seconds": first_at - self.start, "steady_img_per_s": steady}


def _array_bytes(count: int, size: int) -> int:
    return count * 3 * size * size


def _allocate_npy(path: Path, shape: tuple) -> np.memmap:
    """A uint8 ``.npy`` of ``shape`` whose blocks are all allocated: writing through its memory map
    can then never hit a full disk (which is a SIGBUS, not an error)."""
    check_free_space(path.parent, _array_bytes(shape[0], shape[2]) if len(shape) == 4 else 0,
                     f"the preprocessed images {path.name}")
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    total = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, total)
    except OSError as exc:
        raise DiskFullError(f"cannot allocate {human_size(total)} for {path} ({exc.strerror}): free some space "
                            "in that folder or point --checkpoints-dir (CHECKPOINTS_DIR) at a larger disk") from None
    finally:
        os.close(fd)
    return array


def _block_checksums(array: np.ndarray) -> list[str]:
    sums = []
    for start in range(0, len(array), CHECKSUM_ROWS):
        block = array[start:start + CHECKSUM_ROWS]
        sums.append(hashlib.sha256(np.ascontiguousarray(block).data).hexdigest())
        release_pages(block)  # the build reads the whole file once: keep one block resident, not all
    return sums


def _has_checksums(path: Path) -> bool:
    """Entries written before the block checksums existed are rebuilt (the key did not change)."""
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("checksum_rows") == CHECKSUM_ROWS and isinstance(meta.get("block_sha256"), list)


def _kept_rows(count: int, bad: dict[int, str]) -> np.ndarray:
    return np.array([i for i in range(count) if i not in bad], dtype=np.int64)


def _read_entry(path: Path, images: Sequence[LabeledImage], built: bool, skip_bad: bool) -> PreprocessedImages:
    meta = json.loads((path / META_FILE).read_text())
    array = np.load(path / IMAGES_FILE, mmap_mode="r")
    skipped: dict[str, str] = meta.get("skipped", {})
    kept = [image for image in images if image.name not in skipped]
    if (
        meta.get("format") != CACHE_FORMAT
        or len(array) != len(kept)
        or meta["names"] != [image.name for image in kept]
        or meta["labels"] != [image.label for image in kept]
    ):
        raise ValidateError(f"preprocessed-image cache {path} does not match its key; delete it and rerun")
    if skipped and not skip_bad:
        # Built earlier with skip_bad; without it the first bad file is an error, as on a fresh build.
        name, reason = next(iter(skipped.items()))
        bad_path = next(image.path for image in images if image.name == name)
        raise BadImageError(bad_path, f"{reason}; {len(skipped)} undecodable images in this dataset",
                            SKIP_BAD_ADVICE)
    order = {image.name: i for i, image in enumerate(images)}
    checksums = meta.get("block_sha256")
    if checksums is not None and len(checksums) != -(-len(array) // CHECKSUM_ROWS):
        raise ValidateError(f"preprocessed-image cache {path} does not match its key; delete it and rerun")
    loaded = PreprocessedImages(
        images=array,
        labels=np.array(meta["labels"], dtype=np.int64).reshape(-1),
        names=tuple(meta["names"]),
        cache_path=None,
        built=built,
        skipped=tuple(sorted(skipped, key=order.__getitem__)),
        block_sha256=tuple(checksums) if checksums is not None else None,
    )
    loaded._checked_array = array
    return loaded


def _fill(
    output: Path,
    images: Sequence[LabeledImage],
    preprocess: Preprocess,
    workers: int,
    progress: bool,
    description: str,
    skip_bad: bool,
    timing: _Timing,
) -> dict[int, str]:
    """Write every image into the ``.npy`` at ``output``; return {index: reason} of undecodable ones."""
    bad: dict[int, str] = {}

    def record(failures: list[tuple[int, str, str]]) -> None:
        for index, path, reason in failures:
            if not skip_bad:
                raise BadImageError(Path(path), reason, SKIP_BAD_ADVICE)
            bad[index] = reason

    chunks = [
        (str(output), preprocess, start, [str(image.path) for image in images[start : start + CHUNK_SIZE]])
        for start in range(0, len(images), CHUNK_SIZE)
    ]
    finished: set[int] = set()  # start rows of the chunks written

    with tqdm(total=len(images), desc=description, unit="img", disable=not progress, smoothing=0.1) as bar:

        def finish(chunk, failures) -> None:
            record(failures)
            finished.add(chunk[2])
            timing.chunk_done(len(chunk[3]))
            bar.update(len(chunk[3]))

        if workers > 1 and len(images) >= MIN_IMAGES_FOR_POOL:
            try:
                _run_pool(chunks, workers, preprocess.method == "fast", finish)
            except BrokenProcessPool as exc:
                # e.g. a __main__ that cannot be re-imported by spawned workers (code piped to stdin)
                warnings.warn(f"preprocessing worker processes failed ({exc}); continuing in this process",
                              RuntimeWarning, stacklevel=2)
        try:
            for chunk in chunks:
                if chunk[2] not in finished:
                    finish(chunk, _process_chunk(*chunk))
        finally:
            _OPEN_OUTPUTS.pop(str(output), None)
    return bad


def _run_pool(chunks, workers: int, uses_torch: bool, finish) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_init_worker, initargs=(uses_torch, os.getpid())) as pool:
        pending: dict = {}
        queue = iter(chunks)
        try:
            while True:
                # Bounded prefetch: never more than 2 chunks per worker in flight.
                while len(pending) < 2 * workers:
                    chunk = next(queue, None)
                    if chunk is None:
                        break
                    pending[pool.submit(_process_chunk, *chunk)] = chunk
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(pending.pop(future), future.result())
        finally:
            for future in pending:
                future.cancel()


# -- worker side --------------------------------------------------------------------------------


def _end_with_parent(parent_pid: int) -> None:
    """Make this worker die with its parent, even a SIGKILLed one (which runs no clean-up of its own)."""
    import signal
    import threading

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before the prctl took effect
                os._exit(1)
            return
    except (OSError, AttributeError):  # not Linux
        pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_OPEN_OUTPUTS: dict[str, np.memmap] = {}  # per process: the output file, mapped once


def _init_worker(uses_torch: bool, parent_pid: int) -> None:
    _end_with_parent(parent_pid)
    if uses_torch:
        # One worker per core already: the fast path's torch kernels must not add threads of their own.
        import torch
        import torchvision.io  # noqa: F401  (imported here so start-up cost is paid before the first task)
        import torchvision.transforms.v2.functional  # noqa: F401

        torch.set_num_threads(1)


def _process_chunk(output: str, preprocess: Preprocess, start: int, paths: list[str]) -> list[tuple[int, str, str]]:
    """Preprocess ``paths`` into rows ``start...`` of ``output``; return (index, path, reason) failures."""
    array = _OPEN_OUTPUTS.get(output)
    if array is None:
        array = _OPEN_OUTPUTS[output] = np.load(output, mmap_mode="r+")
    failures = []
    for offset, path in enumerate(paths):
        try:
            array[start + offset] = preprocess.load_uint8(path)
        except BadImageError as exc:
            array[start + offset] = 0
            failures.append((start + offset, path, exc.reason))
    return failures
