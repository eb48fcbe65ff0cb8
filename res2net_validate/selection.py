"""Which images are scored and which calibrate INT8.

The card calibrates on the first 3,200 images it then scores.  Here the calibration set
is a seeded sample carved out of val and the rest is scored, unless the user brings a
calibration directory (then every val image is scored) or forces the card's overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ValidateError

DEFAULT_CALIBRATION_IMAGES = 500  # MLPerf's list size
SEED = 0
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Split:
    scored: tuple  # LabeledImage
    calibration: tuple  # LabeledImage (labels unused) when carved from val
    calibration_dir_images: tuple[Path, ...]  # when --calib-dir is given
    total_val: int
    notes: tuple[str, ...]


def split_images(images, *, num_images: int | None, calib_count: int | None, calib_dir: Path | None,
                 calib_on_scored: bool, seed: int = SEED) -> Split:
    images = tuple(images)
    total = len(images)
    order = np.random.default_rng(seed).permutation(total)
    notes = []
    if calib_dir is not None:
        files = calibration_files(calib_dir, calib_count)
        scored_idx = order
        calibration: tuple = ()
        notes.append(f"INT8 calibration: {len(files)} images from --calib-dir {calib_dir}")
    else:
        count = calib_count or min(DEFAULT_CALIBRATION_IMAGES, total // 5)
        if count <= 0 or count >= total:
            raise ValidateError(f"--calib-count {count}: the val set has {total} images; ask for fewer, "
                                "or pass --calib-dir with separate calibration images")
        files = ()
        calibration = tuple(images[i] for i in sorted(order[:count]))
        if calib_on_scored:
            scored_idx = order
            notes.append(f"WARNING: INT8 calibrated on {count} images that are also scored (--calib-on-scored); "
                         "INT8 accuracy is optimistic")
        else:
            scored_idx = order[count:]
            notes.append(f"INT8 calibration: {count} val images (seed {seed}) held out; the other "
                         f"{total - count} are scored (pass --calib-dir to score all {total})")
    if num_images is not None:
        if num_images > len(scored_idx):
            raise ValidateError(f"--num-images {num_images}: only {len(scored_idx)} images are available to score")
        scored_idx = scored_idx[:num_images]
        notes.append(f"scoring a seeded subset of {num_images} images (--num-images)")
    scored = tuple(images[i] for i in sorted(scored_idx))
    return Split(scored, calibration, tuple(files), total, tuple(notes))


def calibration_files(directory: Path, count: int | None) -> tuple[Path, ...]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidateError(f"--calib-dir {directory}: not a directory of images")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValidateError(f"--calib-dir {directory}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if count is not None:
        if len(files) < count:
            raise ValidateError(f"--calib-dir {directory}: {len(files)} images, fewer than --calib-count {count}")
        files = files[:count]
    return tuple(files)
