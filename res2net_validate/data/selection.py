"""Which images are scored and which calibrate INT8.

The card calibrates on the first 3,200 images it then scores.  Here the calibration set
is a seeded sample carved out of val and the rest is scored, unless the user brings a
calibration directory (then every val image is scored) or forces the card's overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ValidateError
from ..schemas import image_list_names, read_text
from .layouts import IMAGE_SUFFIXES  # one list for the val set and --calib-dir

DEFAULT_CALIBRATION_IMAGES = 500  # MLPerf's list size
SEED = 0


@dataclass(frozen=True)
class Split:
    scored: tuple  # LabeledImage
    calibration: tuple  # LabeledImage (labels unused) when carved from val
    calibration_dir_images: tuple[Path, ...]  # when --calib-dir is given
    total_val: int
    notes: tuple[str, ...]
    calibration_held_out: int = 0  # val images carved out for INT8 and never scored


def split_images(images, *, num_images: int | None, calib_count: int | None, calib_dir: Path | None,
                 calib_on_scored: bool, calib_list: Path | None = None, seed: int = SEED,
                 subset_seed: int = SEED) -> Split:
    """Calibration images are always carved with ``seed`` (so INT8's graph does not change with the
    subset); a --num-images subset is the first images of the ``subset_seed`` shuffle of the rest."""
    images = tuple(images)
    total = len(images)
    order = np.random.default_rng(seed).permutation(total)
    notes = []
    if calib_dir is not None:
        files = calibration_files(calib_dir, calib_count, calib_list)
        scored_idx = order
        calibration: tuple = ()
        listed = f" listed in --calib-list {calib_list}" if calib_list is not None else ""
        notes.append(f"INT8 calibration: {len(files)} images{listed} from --calib-dir {calib_dir}")
    else:
        # Calibration images carved out of val: the ones a list names (MLPerf-style), or a seeded sample.
        if calib_list is not None:
            chosen = _listed_val_images(images, calib_list, calib_count)
            how = f"listed in --calib-list {calib_list},"
        else:
            count = calib_count or min(DEFAULT_CALIBRATION_IMAGES, total // 5)
            if count <= 0 or count >= total:
                raise ValidateError(f"--calib-count {count}: the val set has {total} images; ask for fewer, "
                                    "or pass --calib-dir with separate calibration images")
            chosen = sorted(order[:count])
            how = f"(seed {seed})"
        files = ()
        calibration = tuple(images[i] for i in chosen)
        if calib_on_scored:
            scored_idx = order
            notes.append(f"WARNING: INT8 calibrated on {len(chosen)} images that are also scored "
                         "(--calib-on-scored); INT8 accuracy is optimistic")
        else:
            held_out = set(chosen)
            scored_idx = np.array([i for i in order if i not in held_out], dtype=np.int64)
            notes.append(f"INT8 calibration: {len(chosen)} val images {how} held out; the other "
                         f"{total - len(chosen)} are scored (pass --calib-dir to score all {total})")
    population = len(scored_idx)
    if num_images is not None:
        if num_images > len(scored_idx):
            raise ValidateError(f"--num-images {num_images}: only {len(scored_idx)} images are available to score")
        if subset_seed != seed:
            rank = np.empty(total, np.int64)
            rank[np.random.default_rng(subset_seed).permutation(total)] = np.arange(total)
            scored_idx = scored_idx[np.argsort(rank[scored_idx], kind="stable")]
        scored_idx = scored_idx[:num_images]
        notes.append(f"scoring a seeded subset of {num_images} of {population} images (--num-images, "
                     f"--subset-seed {subset_seed})")
    scored = tuple(images[i] for i in sorted(scored_idx))
    carved = 0 if calib_dir is not None or calib_on_scored else len(calibration)
    return Split(scored, calibration, tuple(files), total, tuple(notes), carved)


def _listed_val_images(images, listing: Path, count: int | None) -> list[int]:
    """Indices of the val images a list file names (by file name), sorted."""
    names = read_image_list(listing, count)
    position = {image.name: i for i, image in enumerate(images)}
    unknown = [name for name in names if Path(name).name not in position]
    if unknown:
        raise ValidateError(f"--calib-list {listing}: {len(unknown)} names are not images of the val set "
                            f"(e.g. {unknown[0]}); pass --calib-dir DIR to take them from another folder")
    return sorted({position[Path(name).name] for name in names})


def read_image_list(listing: Path, count: int | None = None) -> list[str]:
    """Image names from a list file (``schemas.image_list_names``: one per line, ``#`` comments, each once,
    relative and without ``..``), the first ``count`` of them."""
    source = f"--calib-list {listing}"
    names = image_list_names(read_text(listing, source), source)
    if not names:
        raise ValidateError(f"{source}: no image names in it. Put one file name per line.")
    return _first(names, count, source)


def calibration_files(directory: Path, count: int | None, listing: Path | None = None) -> tuple[Path, ...]:
    """Calibration image files: those of ``listing`` looked up under ``directory``, or else every
    image below ``directory`` in sorted order; the first ``count``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidateError(f"--calib-dir {directory}: not a directory of images")
    if listing is not None:
        files = tuple(directory / name for name in read_image_list(listing, count))
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ValidateError(
                f"--calib-list {listing}: {len(missing)} listed images do not exist (e.g. {missing[0]}). "
                f"Names are looked up under {directory}; pass --calib-dir to point elsewhere."
            )
        return files
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValidateError(f"--calib-dir {directory}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return tuple(_first(files, count, f"--calib-dir {directory}"))


def _first(images: list, count: int | None, where: str) -> list:
    """The first ``count`` images (all when None); fewer than asked for is the user's error."""
    if count is not None and len(images) < count:
        raise ValidateError(f"{where}: {len(images)} images, fewer than --calib-count {count}")
    return images if count is None else images[:count]
