"""Labels of a dataset: canonical validation file names, the devkit's class IDs, label files.

A label is the index of the class WNID in the sorted list of the 1,000 WNIDs (0..999; the canonical
tables are in ``imagenet.py``); the devkit's own class IDs (1..1000) are mapped onto those labels here.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..constants import NUM_CLASSES
from ..errors import ValidateError
from ..imagenet import canonical_val_labels, canonical_wnids
from ..schemas import parse_class_index, read_text

CANONICAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.[A-Za-z]+$")
DEVKIT_LABEL_FILE = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META_FILE = "meta.mat"
NUM_VAL_IMAGES = 50_000
DEVKIT_FOLDER = "ILSVRC2012_devkit_t12/data"

# Disagreements with the canonical ground truth tolerated before a label file is rejected:
# a handful of relabelled images is plausible, a systematic mix-up is not.
CROSS_CHECK_MAX_ABSOLUTE = 5
CROSS_CHECK_MAX_FRACTION = 0.001


def canonical_label(file_name: str) -> int | None:
    """Canonical label of a ``ILSVRC2012_val_XXXXXXXX.*`` file name, None for other names."""
    match = CANONICAL_NAME.match(file_name)
    return canonical_val_labels().get(f"ILSVRC2012_val_{match.group(1)}") if match else None


# ----------------------------------------------------------------------------------------------
# Devkit class IDs (1..1000) -> sorted-WNID labels


def allowed_disagreements(checked: int) -> int:
    """How many of ``checked`` labels may differ from the canonical ground truth: a handful."""
    return max(CROSS_CHECK_MAX_ABSOLUTE, int(CROSS_CHECK_MAX_FRACTION * checked))


def scipy_loadmat() -> Callable | None:
    """scipy's ``loadmat``, or None when scipy (the optional ``devkit`` extra) is not installed."""
    try:
        from scipy.io import loadmat
    except ImportError:
        return None
    return loadmat


def devkit_id_to_wnid(meta_path: Path) -> dict[int, str]:
    """Devkit class ID (1..1000) -> WNID, from the devkit's ``meta.mat`` (needs scipy)."""
    if not meta_path.is_file():
        raise ValidateError(f"{meta_path} not found: expected the devkit's {DEVKIT_FOLDER}/{DEVKIT_META_FILE}")
    loadmat = scipy_loadmat()
    if loadmat is None:
        raise ValidateError(f"reading {meta_path} needs scipy: pip install res2net_validate[devkit]")
    try:
        synsets = loadmat(str(meta_path), squeeze_me=True)["synsets"]
        mapping = {
            int(entry["ILSVRC2012_ID"]): str(entry["WNID"])
            for entry in synsets
            if int(entry["num_children"]) == 0
        }
    except Exception as exc:  # scipy raises many kinds of errors on a wrong file
        raise ValidateError(f"{meta_path} is not the ILSVRC2012 devkit meta.mat ({exc})") from exc
    if sorted(mapping) != list(range(1, NUM_CLASSES + 1)) or set(mapping.values()) != set(canonical_wnids()):
        raise ValidateError(f"{meta_path} does not describe the 1,000 ILSVRC2012 classes; use the devkit's meta.mat")
    return mapping


def read_devkit_ids(ground_truth: Path) -> list[int]:
    """The devkit class ID on each line; line *i* is image ``ILSVRC2012_val_{i:08d}``, all 50,000 of them."""
    advice = f"Use the unmodified {DEVKIT_LABEL_FILE} from the ILSVRC2012 devkit ({DEVKIT_FOLDER})"
    lines = read_text(ground_truth, str(ground_truth)).splitlines()
    while lines and not lines[-1].strip():  # trailing blank lines are harmless; a blank line inside is not
        lines.pop()
    if len(lines) != NUM_VAL_IMAGES:
        if len(lines) > NUM_VAL_IMAGES:
            where = f"lines {NUM_VAL_IMAGES + 1} to {len(lines)} are extra"
        elif not lines:
            where = "it is empty"
        else:
            missing = NUM_VAL_IMAGES - len(lines)
            where = f"it ends at line {len(lines)}, {missing:,} line{'s' if missing > 1 else ''} short"
        raise ValidateError(
            f"{ground_truth} has {len(lines):,} lines, expected {NUM_VAL_IMAGES:,} (one per validation image, "
            f"however many images are on disk): {where}. {advice}"
        )
    return [_parse_devkit_id(line.strip(), f"{ground_truth} line {number}") for number, line in enumerate(lines, 1)]


def _canonical_labels_by_line() -> list[int]:
    """The canonical label of image ``ILSVRC2012_val_{i:08d}`` at index i-1, i.e. in ground-truth line order."""
    truth = canonical_val_labels()
    return [truth[f"ILSVRC2012_val_{number:08d}"] for number in range(1, NUM_VAL_IMAGES + 1)]


@dataclass(frozen=True)
class _IdMatch:
    """Devkit ID -> sorted-WNID label, each ID taking the canonical label most of its lines have."""

    label_of_id: dict[int, int]
    problem: str | None  # why this is not a usable mapping; None when it is


def _match_ids_to_labels(devkit_ids: Sequence[int], labels: Sequence[int]) -> _IdMatch:
    """Majority vote of ``labels`` per devkit ID (the two lists are paired line by line), then validated.

    A usable mapping is a one-to-one renaming of the 1,000 classes that explains every line but a
    handful, the same tolerance as the label cross-check.
    """
    votes: dict[int, Counter] = {}
    for devkit_id, label in zip(devkit_ids, labels):
        votes.setdefault(devkit_id, Counter())[label] += 1
    label_of_id = {devkit_id: counts.most_common(1)[0][0] for devkit_id, counts in votes.items()}
    lines = min(len(devkit_ids), len(labels))
    disagreeing = sum(label_of_id[devkit_id] != label for devkit_id, label in zip(devkit_ids, labels))
    ids_of_label: dict[int, list[int]] = {}
    for devkit_id in sorted(label_of_id):
        ids_of_label.setdefault(label_of_id[devkit_id], []).append(devkit_id)
    shared = {label: ids for label, ids in ids_of_label.items() if len(ids) > 1}
    absent = sorted(set(range(1, NUM_CLASSES + 1)) - set(votes))

    problems = []
    if disagreeing > allowed_disagreements(lines):
        problems.append(
            f"{disagreeing:,} of {lines:,} lines disagree with the canonical ground truth under the best "
            f"ID-to-label match (at most {allowed_disagreements(lines)} may)"
        )
    if absent:
        problems.append(f"{len(absent)} devkit IDs never appear (e.g. {', '.join(map(str, absent[:3]))})")
    if shared:
        label, ids = next(iter(shared.items()))
        problems.append(
            f"{len(shared)} labels would be shared by several devkit IDs (e.g. IDs {', '.join(map(str, ids[:3]))} "
            f"all best match label {label}), so the IDs are not a one-to-one renaming of the 1,000 classes"
        )
    return _IdMatch(label_of_id, "; ".join(problems) or None)


def derive_devkit_labels(ground_truth: Path, devkit_ids: Sequence[int]) -> dict[int, int]:
    """Devkit ID -> sorted-WNID label, derived from all 50,000 lines and the canonical ground truth."""
    truth = _canonical_labels_by_line()
    match = _match_ids_to_labels(devkit_ids, truth)
    if match.problem is None:
        return match.label_of_id
    # Say *why* it fails where we can: a file out of step by a line or two still matches once re-aligned.
    for shift in (1, -1, 2, -2, 3, -3):
        # shift > 0: line i holds the ID of image i + shift
        aligned_ids = devkit_ids[:-shift] if shift > 0 else devkit_ids[-shift:]
        aligned_truth = truth[shift:] if shift > 0 else truth[:shift]
        if _match_ids_to_labels(aligned_ids, aligned_truth).problem is None:
            lines = "a line" if abs(shift) == 1 else f"{abs(shift)} lines"
            cause = (
                f"line i holds the ID of image i{shift:+d}, as if {lines} had been "
                f"{'removed from' if shift > 0 else 'inserted at'} the top (and the count made up at the end)"
            )
            diagnosis = f"The file is shifted by {lines}: {cause}."
            break
    else:
        diagnosis = (
            "Lines out of step with the images (one added or removed part-way), reordered lines, or a file that "
            "is not the devkit's validation ground truth look like this."
        )
    raise ValidateError(
        f"{ground_truth} does not match the ImageNet validation images: {match.problem}. {diagnosis} "
        f"Use the unmodified {DEVKIT_LABEL_FILE} from the ILSVRC2012 devkit ({DEVKIT_FOLDER}), "
        "or a val_map.txt / WNID-folder layout instead"
    )


def check_meta_mat_agrees(meta_path: Path, ground_truth: Path, from_meta: dict[int, int],
                           derived: dict[int, int]) -> None:
    differing = [devkit_id for devkit_id in sorted(from_meta) if from_meta[devkit_id] != derived[devkit_id]]
    if not differing:
        return
    wnids = canonical_wnids()
    examples = "; ".join(
        f"ID {devkit_id} is {wnids[from_meta[devkit_id]]} in meta.mat but its images are {wnids[derived[devkit_id]]}"
        for devkit_id in differing[:3]
    )
    raise ValidateError(
        f"{meta_path} and {ground_truth} disagree on {len(differing)} of {NUM_CLASSES:,} devkit class IDs "
        f"({examples}). The ground-truth file matches the canonical ImageNet labels, so meta.mat is from another "
        f"release or was edited: take both files from the same ILSVRC2012 devkit, or remove {meta_path} "
        "(the IDs are then mapped from the ground-truth file alone)"
    )


def _parse_devkit_id(text: str, where: str) -> int:
    return parse_class_index(text, where, "", 1, NUM_CLASSES, "devkit class ID")
